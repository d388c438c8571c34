// Runner checkpoints across machines: the fingerprint names the inputs by
// content (digests), so a checkpoint copied to another work dir, with the model
// at another path, resumes there; a checkpoint of another run is refused, or
// dropped (start from zero) when the caller asks for that (squeeze-worker).
#include "workers/runner/checkpoint.h"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/objectstore/local_object_store.h"
#include "server/objectstore/manifest.h"
#include "tests/common/run_helpers.h"
#include "tests/common/synthetic_inputs.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Fresh(const std::string& name) { return test_inputs::FreshTestDir("squeeze_ckpt_test_", name); }

ModelConfig SmallConfig() {
  return test_inputs::SmallGqaConfig(/*hidden_dim=*/64, /*n_layers=*/3, /*vocab_size=*/40, /*max_seq_len=*/64,
                                     /*tied=*/false);
}

std::string SaveRandomModel(const std::string& name, uint64_t seed) {
  const std::string d = Fresh(name);
  Model m = MakeRandomModel(SmallConfig(), seed);
  absl::Status s = SaveModel(m, d);
  EXPECT_TRUE(s.ok()) << s;
  return d;
}

constexpr char kRecipe[] = R"(
prune_stage:
  pruning_modifiers:
    MagnitudePruningModifier: {mask_structure: "2:4"}
quant_stage:
  quant_modifiers:
    QuantizationModifier: {scheme: W8A16}
)";

Recipe MustParse(const std::string& yaml) {
  auto r = ParseRecipe(yaml);
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

using test_inputs::StopAfter;

class Recorder final : public ProgressSink {
 public:
  void OnProgress(const ProgressEvent& e) override { events.push_back(e); }
  int LayerEvents() const {
    int n = 0;
    for (const auto& e : events) n += e.unit == "layer";
    return n;
  }
  std::vector<ProgressEvent> events;
};

using test_inputs::DirContents;

void CopyDir(const std::string& from, const std::string& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

// Runs to completion into `out` (uninterrupted reference).
std::map<std::string, std::string> FullRun(const std::string& model, const std::string& out) {
  RunOptions o;
  o.model_path = model;
  o.output_dir = out;
  NullProgressSink null;
  RunControl c;
  auto r = RunRecipe(MustParse(kRecipe), o, null, c);
  EXPECT_TRUE(r.ok()) << r.status();
  return DirContents(out);
}

// Stops after `layers` layer events; returns the work dir holding the checkpoint.
std::string StoppedRun(RunOptions o, int layers) {
  RunControl c;
  StopAfter sink(c, layers);
  auto r = RunRecipe(MustParse(kRecipe), o, sink, c);
  EXPECT_TRUE(IsStoppedWithCheckpoint(r.status())) << r.status();
  EXPECT_TRUE(HasRunCheckpoint(o.work_dir));
  return o.work_dir;
}

TEST(RunCheckpoint, ContentDigestIsTheObjectStoreNameOfADirectoryAndTheSha256OfAFile) {
  const std::string model = SaveRandomModel("digest_model", 5);
  auto objects = store::LocalObjectStore::Open(Fresh("digest_objects"));
  ASSERT_TRUE(objects.ok()) << objects.status();
  auto uploaded = store::PutTree(**objects, model);  // what `squeeze upload` names it
  ASSERT_TRUE(uploaded.ok()) << uploaded.status();
  EXPECT_EQ(*ContentDigest(model), *uploaded);
  const std::string file = Fresh("digest_file.txt");
  ASSERT_TRUE(WriteFileAtomically(file, "abc").ok());
  EXPECT_EQ(*ContentDigest(file), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ContentDigest(Fresh("nowhere")).status().code(), absl::StatusCode::kNotFound);
}

// The same model at another path and the checkpoint in another work dir (as on
// a second worker) resume, and the result is byte-identical to an
// uninterrupted run.
TEST(RunCheckpoint, ResumesOnAnotherMachineFromACopiedCheckpoint) {
  const std::string model_a = SaveRandomModel("machine_a_model", 5);
  const auto reference = FullRun(model_a, Fresh("machine_ref"));
  for (int stop_after : {2, 4}) {  // inside stage 1, then inside stage 2
    RunOptions a;
    a.model_path = model_a;
    a.output_dir = Fresh("machine_a_out");
    a.work_dir = Fresh("machine_a_work");
    const std::string work_a = StoppedRun(a, stop_after);

    const std::string model_b = Fresh("machine_b_model");
    CopyDir(model_a, model_b);
    RunOptions b;
    b.model_path = model_b;
    b.output_dir = Fresh("machine_b_out");
    b.work_dir = Fresh("machine_b_work");
    CopyDir(work_a, b.work_dir);
    RunControl c;
    Recorder rec;
    auto r = RunRecipe(MustParse(kRecipe), b, rec, c);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->resumed);
    // Its measured compression seconds miss the part run before the stop.
    EXPECT_EQ(r->report["scores"]["hulk"].value("partial_after_resume", false), true) << r->report["scores"].dump();
    EXPECT_EQ(rec.LayerEvents(), 6 - stop_after) << "resumed where it stopped, not from zero";
    bool announced = false;
    for (const auto& e : rec.events) {
      if (e.stage == "resume" && e.message.find("resumed from checkpoint") != std::string::npos) {
        announced = true;
        EXPECT_EQ(static_cast<int>(e.metrics.at("resume_stage")) * 3 + static_cast<int>(e.metrics.at("resume_layer")),
                  stop_after)
            << e.message;
      }
    }
    EXPECT_TRUE(announced);
    EXPECT_EQ(DirContents(b.output_dir), reference);
    EXPECT_FALSE(HasRunCheckpoint(b.work_dir));
  }
}

// Given digests (squeeze-worker passes its task's) identify the run; the paths
// do not matter, another digest is another run.
TEST(RunCheckpoint, GivenDigestsIdentifyTheRun) {
  const std::string model = SaveRandomModel("given_model", 5);
  const auto reference = FullRun(model, Fresh("given_ref"));
  RunOptions a;
  a.model_path = model;
  a.model_digest = std::string(64, 'a');
  a.output_dir = Fresh("given_a_out");
  a.work_dir = Fresh("given_a_work");
  StoppedRun(a, 3);

  RunOptions other = a;
  other.model_digest = std::string(64, 'b');
  NullProgressSink null;
  RunControl c;
  auto refused = RunRecipe(MustParse(kRecipe), other, null, c);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("checkpoint of another run"));
  EXPECT_TRUE(HasRunCheckpoint(a.work_dir));  // refused, never applied or removed

  RunOptions b = a;
  b.model_path = Fresh("given_b_model");
  CopyDir(model, b.model_path);
  b.work_dir = Fresh("given_b_work");
  CopyDir(a.work_dir, b.work_dir);
  Recorder rec;
  auto r = RunRecipe(MustParse(kRecipe), b, rec, c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->resumed);
  EXPECT_EQ(rec.LayerEvents(), 3);
  EXPECT_EQ(DirContents(b.output_dir), reference);
}

// Without digests the runner hashes the inputs: the same path with other
// contents is another run.
TEST(RunCheckpoint, ChangedModelContentsAreAnotherRun) {
  const std::string model = SaveRandomModel("changed_model", 5);
  RunOptions o;
  o.model_path = model;
  o.output_dir = Fresh("changed_out");
  o.work_dir = Fresh("changed_work");
  StoppedRun(o, 1);
  Model other = MakeRandomModel(SmallConfig(), 6);
  ASSERT_TRUE(SaveModel(other, model).ok());  // same path, new weights
  NullProgressSink null;
  RunControl c;
  auto r = RunRecipe(MustParse(kRecipe), o, null, c);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("checkpoint of another run"));
}

// discard_unusable_checkpoint (squeeze-worker): another run's checkpoint, or a
// damaged one, is reported, removed, and the run starts from zero with the
// same result as an uninterrupted run.
TEST(RunCheckpoint, UnusableCheckpointIsDroppedWhenAskedAndTheRunStartsFromZero) {
  const std::string model = SaveRandomModel("discard_model", 5);
  const auto reference = FullRun(model, Fresh("discard_ref"));
  for (const char* damage : {"other_run", "truncated_tensors", "bad_json"}) {
    SCOPED_TRACE(damage);
    RunOptions o;
    o.model_path = model;
    o.output_dir = Fresh("discard_out");
    o.work_dir = Fresh("discard_work");
    o.model_digest = std::string(64, '1');
    StoppedRun(o, 4);
    const std::string st = o.work_dir + "/checkpoint.safetensors";
    if (std::string(damage) == "other_run") {
      o.model_digest = std::string(64, '2');
    } else if (std::string(damage) == "truncated_tensors") {
      fs::resize_file(st, fs::file_size(st) / 2);
    } else {
      ASSERT_TRUE(WriteFileAtomically(o.work_dir + "/checkpoint.json", "{\"version\": 1, \"stage\": ").ok());
    }
    o.discard_unusable_checkpoint = true;
    RunControl c;
    Recorder rec;
    auto r = RunRecipe(MustParse(kRecipe), o, rec, c);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->resumed);
    EXPECT_EQ(rec.LayerEvents(), 6);
    bool reported = false;
    for (const auto& e : rec.events) {
      reported = reported || (e.stage == "resume" && e.message.find("starting from zero") != std::string::npos);
    }
    EXPECT_TRUE(reported);
    EXPECT_EQ(DirContents(o.output_dir), reference);
    EXPECT_FALSE(HasRunCheckpoint(o.work_dir));
  }
}

// LoadRunCheckpoint is all or nothing: a checkpoint that fails part-way
// leaves the model as it was (so the caller can start from zero).
TEST(RunCheckpoint, LoadLeavesTheModelUntouchedOnError) {
  const nlohmann::json fp = {{"run", 1}};
  Model source = MakeRandomModel(SmallConfig(), 7);
  const std::string first = source.AllLinears().front().name;
  const std::string dir = Fresh("partial_work");
  CheckpointPosition pos;
  pos.stage = 0;
  pos.next_layer = 1;
  ASSERT_TRUE(SaveRunCheckpoint(dir, fp, source, {first}, pos).ok());

  Model target = MakeRandomModel(SmallConfig(), 8);
  const MatrixRM before = (*target.AllLinears().front().slot)->DenseWeight();
  const std::vector<float> norm_before = target.blocks[0].attn_norm;
  // A module list that names the good module, then one this model lacks.
  auto text = ReadFileToString(dir + "/checkpoint.json");
  nlohmann::json j = nlohmann::json::parse(*text);
  j["modules"].push_back("model.layers.99.self_attn.q_proj");
  ASSERT_TRUE(WriteFileAtomically(dir + "/checkpoint.json", j.dump()).ok());
  std::set<std::string> modules;
  auto bad = LoadRunCheckpoint(dir, fp, target, &modules);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("unknown module"));
  EXPECT_TRUE(modules.empty());
  EXPECT_TRUE(((*target.AllLinears().front().slot)->DenseWeight().array() == before.array()).all());
  EXPECT_EQ(target.blocks[0].attn_norm, norm_before);

  // The intact checkpoint applies: the module and the norms become the source's.
  j["modules"].erase(j["modules"].size() - 1);
  ASSERT_TRUE(WriteFileAtomically(dir + "/checkpoint.json", j.dump()).ok());
  auto good = LoadRunCheckpoint(dir, fp, target, &modules);
  ASSERT_TRUE(good.ok()) << good.status();
  ASSERT_TRUE(good->has_value());
  EXPECT_EQ((*good)->next_layer, 1);
  EXPECT_EQ(modules, std::set<std::string>{first});
  EXPECT_TRUE(((*target.AllLinears().front().slot)->DenseWeight().array() ==
               (*source.AllLinears().front().slot)->DenseWeight().array())
                  .all());
  EXPECT_EQ(target.blocks[0].attn_norm, source.blocks[0].attn_norm);
}

}  // namespace
}  // namespace squeeze
