// report.md / pareto.svg rendering: the SVG is well-formed XML (checked by a
// small parser here) and every point sits where its data says.
#include "workers/runner/report_render.h"

#include <cctype>
#include <cmath>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace squeeze {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

struct Element {
  std::string name;
  std::map<std::string, std::string> attrs;
};

std::string Unescape(const std::string& s, std::string* error) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      if (s[i] == '<') *error = "raw '<' in an attribute";
      out += s[i];
      continue;
    }
    const size_t semi = s.find(';', i);
    if (semi == std::string::npos) {
      *error = "unterminated entity";
      return out;
    }
    const std::string ent = s.substr(i + 1, semi - i - 1);
    static const std::map<std::string, char> kEnt = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    auto it = kEnt.find(ent);
    if (it == kEnt.end()) {
      *error = "unknown entity &" + ent + ";";
      return out;
    }
    out += it->second;
    i = semi;
  }
  return out;
}

// A small XML well-formedness check: one root, matched tags, quoted unique
// attributes, known entities, no raw '<' or '&' in text. Returns the
// elements in document order; `error` is set on the first problem.
std::vector<Element> ParseXml(const std::string& doc, std::string* error) {
  std::vector<Element> out;
  std::vector<std::string> stack;
  size_t i = 0;
  int roots = 0;
  auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':' || c == '.'; };
  while (i < doc.size() && error->empty()) {
    if (doc[i] != '<') {
      if (doc[i] == '&') {
        const size_t semi = doc.find(';', i);
        std::string e;
        Unescape(doc.substr(i, semi == std::string::npos ? 1 : semi - i + 1), &e);
        if (!e.empty()) *error = e;
      } else if (stack.empty() && !std::isspace(static_cast<unsigned char>(doc[i]))) {
        *error = "text outside the root element";
      }
      ++i;
      continue;
    }
    if (doc.compare(i, 5, "<?xml") == 0) {
      const size_t e = doc.find("?>", i);
      if (e == std::string::npos || i != 0) *error = "bad XML declaration";
      i = e + 2;
      continue;
    }
    if (doc.compare(i, 2, "</") == 0) {
      const size_t e = doc.find('>', i);
      const std::string name = doc.substr(i + 2, e - i - 2);
      if (stack.empty() || stack.back() != name) *error = "mismatched </" + name + ">";
      else stack.pop_back();
      i = e + 1;
      continue;
    }
    ++i;
    Element el;
    while (i < doc.size() && name_char(doc[i])) el.name += doc[i++];
    if (el.name.empty()) {
      *error = "empty tag name";
      break;
    }
    bool self_closing = false;
    while (i < doc.size() && error->empty()) {
      while (i < doc.size() && std::isspace(static_cast<unsigned char>(doc[i]))) ++i;
      if (doc[i] == '>') {
        ++i;
        break;
      }
      if (doc.compare(i, 2, "/>") == 0) {
        self_closing = true;
        i += 2;
        break;
      }
      std::string an;
      while (i < doc.size() && name_char(doc[i])) an += doc[i++];
      if (an.empty() || doc[i] != '=' || doc[i + 1] != '"') {
        *error = "bad attribute in <" + el.name + ">";
        break;
      }
      const size_t end = doc.find('"', i + 2);
      if (end == std::string::npos) {
        *error = "unterminated attribute";
        break;
      }
      if (el.attrs.count(an)) *error = "duplicate attribute " + an;
      el.attrs[an] = Unescape(doc.substr(i + 2, end - i - 2), error);
      i = end + 1;
    }
    if (stack.empty()) ++roots;
    if (!self_closing) stack.push_back(el.name);
    out.push_back(std::move(el));
  }
  if (error->empty() && !stack.empty()) *error = "unclosed <" + stack.back() + ">";
  if (error->empty() && roots != 1) *error = "expected one root element";
  return out;
}

TEST(ReportRenderTest, XmlCheckerCatchesBrokenDocuments) {
  std::string e;
  ParseXml("<a><b x=\"1\"/></a>", &e);
  EXPECT_EQ(e, "");
  for (const char* bad : {"<a><b></a>", "<a x=1></a>", "<a>&foo;</a>", "<a></a><b/>", "<a x=\"<\"></a>", "<a>"}) {
    std::string err;
    ParseXml(bad, &err);
    EXPECT_NE(err, "") << bad;
  }
}

std::vector<VariantPoint> ThreeVariants() {
  return {{"dense", 2000, 1e6, 2.0, {{"piqa", 60}, {"eval_text", 20}}},
          {"w4 <gptq> & co", 2000, 3e5, 1.5, {{"piqa", 58}, {"eval_text", 19}}},
          {"wanda\"50", 1200, 6e5, 1.8, {{"piqa", 52}, {"eval_text", 10}}}};
}

TEST(ReportRenderTest, SvgIsWellFormedAndPointsSitWhereTheDataSays) {
  const auto v = ThreeVariants();
  const std::string svg = RenderParetoSvg(v);
  std::string err;
  const std::vector<Element> els = ParseXml(svg, &err);
  ASSERT_EQ(err, "") << svg;
  ASSERT_EQ(els.front().name, "svg");
  std::map<std::string, std::vector<Element>> by_panel;
  for (const Element& e : els) {
    if (e.name == "circle" && e.attrs.count("data-panel")) by_panel[e.attrs.at("data-panel")].push_back(e);
  }
  ASSERT_EQ(by_panel.size(), 3u);  // bytes, flops, latency (every variant has a latency)
  const std::map<std::string, std::function<double(const VariantPoint&)>> cost = {
      {"bytes", [](const VariantPoint& p) { return p.bytes; }},
      {"flops", [](const VariantPoint& p) { return p.flops_per_token; }},
      {"latency", [](const VariantPoint& p) { return p.latency_ms; }}};
  const std::vector<std::string> panels = {"bytes", "flops", "latency"};
  for (size_t pi = 0; pi < panels.size(); ++pi) {
    const auto& pts = by_panel[panels[pi]];
    ASSERT_EQ(pts.size(), 3u);
    // Names (escaped in the file) come back as given, in order; data as given.
    double xs[3], ys[3], cx[3], cy[3];
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(pts[i].attrs.at("data-name"), v[i].name);
      xs[i] = cost.at(panels[pi])(v[i]);
      ys[i] = (v[i].scores.at("piqa") + v[i].scores.at("eval_text")) / 2;
      EXPECT_NEAR(std::stod(pts[i].attrs.at("data-x")), xs[i], 1e-6 * std::fabs(xs[i]));
      EXPECT_NEAR(std::stod(pts[i].attrs.at("data-y")), ys[i], 1e-6);
      cx[i] = std::stod(pts[i].attrs.at("cx"));
      cy[i] = std::stod(pts[i].attrs.at("cy"));
    }
    // The documented mapping: range padded by 8% of its width.
    double xlo = *std::min_element(xs, xs + 3), xhi = *std::max_element(xs, xs + 3);
    if (xhi == xlo) {
      const double d = 0.1 * std::fabs(xlo);
      xlo -= d;
      xhi += d;
    } else {
      const double pad = 0.08 * (xhi - xlo);
      xlo -= pad;
      xhi += pad;
    }
    double ylo = *std::min_element(ys, ys + 3), yhi = *std::max_element(ys, ys + 3);
    const double ypad = 0.08 * (yhi - ylo);
    ylo -= ypad;
    yhi += ypad;
    for (int i = 0; i < 3; ++i) {
      const double ex = kPanelWidth * pi + kPlotLeft + (xs[i] - xlo) / (xhi - xlo) * kPlotWidth;
      const double ey = kPlotTop + kPlotHeight - (ys[i] - ylo) / (yhi - ylo) * kPlotHeight;
      EXPECT_NEAR(cx[i], ex, 0.006) << panels[pi] << " " << v[i].name;
      EXPECT_NEAR(cy[i], ey, 0.006) << panels[pi] << " " << v[i].name;
      // Inside the panel's plot area.
      EXPECT_GE(cx[i], kPanelWidth * pi + kPlotLeft);
      EXPECT_LE(cx[i], kPanelWidth * pi + kPlotLeft + kPlotWidth);
      EXPECT_GE(cy[i], kPlotTop);
      EXPECT_LE(cy[i], kPlotTop + kPlotHeight);
    }
  }
  // Pareto flags: on bytes, dense (40) is dominated? No: it has the best quality.
  // bytes: w4 (3e5, 38.5) and dense (1e6, 40) optimal; wanda (6e5, 31) dominated by w4.
  EXPECT_EQ(by_panel["bytes"][0].attrs.at("data-pareto"), "1");
  EXPECT_EQ(by_panel["bytes"][1].attrs.at("data-pareto"), "1");
  EXPECT_EQ(by_panel["bytes"][2].attrs.at("data-pareto"), "0");
  // flops: wanda is the cheapest (1200), so it is optimal there; w4 ties dense on FLOPs with less quality.
  EXPECT_EQ(by_panel["flops"][0].attrs.at("data-pareto"), "1");
  EXPECT_EQ(by_panel["flops"][1].attrs.at("data-pareto"), "0");
  EXPECT_EQ(by_panel["flops"][2].attrs.at("data-pareto"), "1");
}

TEST(ReportRenderTest, NoLatencyPanelWithoutMeasuredLatencyAndNoPointsWithoutQuality) {
  auto v = ThreeVariants();
  v[1].latency_ms = 0;
  std::string err;
  auto els = ParseXml(RenderParetoSvg(v), &err);
  ASSERT_EQ(err, "");
  int latency = 0, points = 0;
  for (const Element& e : els) {
    if (e.name == "circle") ++points;
    if (e.attrs.count("data-panel") && e.attrs.at("data-panel") == "latency") ++latency;
  }
  EXPECT_EQ(latency, 0);
  EXPECT_EQ(points, 6);
  for (auto& p : v) p.scores.clear();
  const std::string empty = RenderParetoSvg(v);
  ParseXml(empty, &err);
  ASSERT_EQ(err, "");
  EXPECT_THAT(empty, HasSubstr("no quality figures"));
  EXPECT_EQ(empty.find("<circle"), std::string::npos);
}

json HandReport() {
  return json::parse(R"({
    "format": "squeeze-report-v1",
    "model": {"architecture": "llama", "n_layers": 5, "dim": 64, "hidden_dim": 172, "vocab_size": 512},
    "seed": 0,
    "stages": [{"name": "s", "modifiers": ["WandaPruningModifier"], "n_layers": 5, "layers": []}],
    "quality": {"perplexity": {"seq_len": 256, "tokens": 1000, "dense": 4.5, "compressed": 9.25},
                "tasks": {"piqa": {"format": "multiple_choice", "n": 20, "examples": [1, 5],
                                    "dense": {"acc": 0.5, "acc_stderr": 0.1, "acc_norm": 0.55, "acc_norm_stderr": 0.1},
                                    "compressed": {"acc": 0.45, "acc_stderr": 0.1, "acc_norm": 0.5, "acc_norm_stderr": 0.1}}},
                "agreement": {"positions": 100, "mean_kl": 0.25, "top1_agreement": 0.8}},
    "cost": {"context_len": 256,
             "dense": {"params_total": 260000, "params_nonzero": 260000, "bytes_in_memory": 1040000, "flops_per_token": 500000},
             "compressed": {"params_total": 260000, "params_nonzero": 150000, "bytes_in_memory": 1040000, "flops_per_token": 500000}},
    "scores": {"compression_ratio": 1.0, "task_scores": {"dense": {"piqa": 55, "eval_text": 22.2},
                                                          "compressed": {"piqa": 50, "eval_text": 10.8}},
               "elue": {"score": -8.2}, "pareto": {"bytes": ["dense"], "flops": ["dense"]}}
  })");
}

TEST(ReportRenderTest, VariantsAndMarkdownFromAReport) {
  const json r = HandReport();
  auto v = ReportVariants(r, "job-1");
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), 2u);
  EXPECT_EQ((*v)[0].name, "dense");
  EXPECT_EQ((*v)[1].name, "job-1");
  EXPECT_EQ((*v)[1].scores.at("piqa"), 50);
  EXPECT_EQ((*v)[0].bytes, 1040000);
  EXPECT_EQ((*v)[0].latency_ms, 0);  // no measured section
  const std::string md = RenderReportMarkdown(r);
  EXPECT_THAT(md, HasSubstr("| perplexity (rolling, window 256, 1000 tokens) | 4.5 | 9.25 |"));
  EXPECT_THAT(md, HasSubstr("piqa acc_norm (n=20, sampled) | 0.55"));
  EXPECT_THAT(md, HasSubstr("top-1 agreement 0.8000"));
  EXPECT_THAT(md, HasSubstr("ELUE-style score"));
  EXPECT_THAT(md, HasSubstr("-8.200"));
  EXPECT_THAT(md, HasSubstr("![Pareto plot](pareto.svg)"));
  EXPECT_EQ(md.find("Latency"), std::string::npos);
  EXPECT_FALSE(ReportVariants(json::object()).ok());
}

TEST(ReportRenderTest, CombineReportsOfOneModel) {
  json a = HandReport(), b = HandReport();
  b["scores"]["task_scores"]["compressed"]["piqa"] = 53;
  b["cost"]["compressed"]["bytes_in_memory"] = 400000;
  auto v = CombineVariants({{"a", a}, {"b", b}});
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), 3u);
  EXPECT_EQ((*v)[2].name, "b");
  EXPECT_EQ((*v)[2].bytes, 400000);
  const std::string md = RenderComparisonMarkdown(*v);
  EXPECT_THAT(md, HasSubstr("| b |"));
  json c = HandReport();
  c["cost"]["dense"]["bytes_in_memory"] = 5;
  auto bad = CombineVariants({{"a", a}, {"c", c}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("dense model differs"));
}

}  // namespace
}  // namespace squeeze
