#include "server/objectstore/s3_xml.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace squeeze::store {
namespace {

std::string Unescape(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    const size_t semi = s.find(';', i);
    if (semi == absl::string_view::npos) {
      out.push_back('&');
      continue;
    }
    const absl::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out.push_back('&');
    else if (ent == "lt") out.push_back('<');
    else if (ent == "gt") out.push_back('>');
    else if (ent == "quot") out.push_back('"');
    else if (ent == "apos") out.push_back('\'');
    else if (!ent.empty() && ent[0] == '#') {
      const std::string num(ent.substr(1));
      const long cp = (!num.empty() && (num[0] == 'x' || num[0] == 'X')) ? std::strtol(num.c_str() + 1, nullptr, 16)
                                                                         : std::strtol(num.c_str(), nullptr, 10);
      if (cp > 0 && cp < 0x80) out.push_back(static_cast<char>(cp));
      else out.append(s.data() + i, semi - i + 1);  // non-ASCII: keep as written
    } else {
      out.append(s.data() + i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

}  // namespace

std::vector<std::string> S3XmlValues(absl::string_view xml, absl::string_view tag) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    const size_t lt = xml.find('<', pos);
    if (lt == absl::string_view::npos) break;
    size_t name_end = lt + 1;
    while (name_end < xml.size() && xml[name_end] != '>' && xml[name_end] != ' ' && xml[name_end] != '/') ++name_end;
    absl::string_view name = xml.substr(lt + 1, name_end - lt - 1);
    if (const size_t colon = name.find(':'); colon != absl::string_view::npos) name = name.substr(colon + 1);
    const size_t gt = xml.find('>', lt);
    if (gt == absl::string_view::npos) break;
    pos = gt + 1;
    if (name != tag || xml[gt - 1] == '/') continue;
    // The matching close tag (S3 documents do not nest an element in itself).
    const size_t close = xml.find(absl::StrCat("</", xml.substr(lt + 1, name_end - lt - 1), ">"), pos);
    if (close == absl::string_view::npos) break;
    out.push_back(Unescape(xml.substr(pos, close - pos)));
    pos = close;
  }
  return out;
}

std::string S3XmlValue(absl::string_view xml, absl::string_view tag) {
  std::vector<std::string> v = S3XmlValues(xml, tag);
  return v.empty() ? std::string() : v.front();
}

std::string S3XmlEscape(absl::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace squeeze::store
