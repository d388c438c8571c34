// AuthConfig::Parse: the documented format, and hostile or mistaken configs
// refused with the YAML path and reason (never echoing a pasted token).
#include "server/auth/auth_config.h"

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "server/objectstore/sha256.h"
#include "tests/common/temp_dirs.h"

namespace squeeze::auth {
namespace {

const std::string kDigestA = store::Sha256Hex("token-a");
const std::string kDigestB = store::Sha256Hex("token-b");

TEST(AuthConfig, ParsesTenantsDigestsAndLimits) {
  const std::string yaml = "tenants:\n"
                           "  - name: team-a\n"
                           "    token_sha256: [" + kDigestA + ", " + store::Sha256Hex("second") + "]\n"
                           "    max_upload_bytes: 1048576\n"
                           "    requests_per_second: 5\n"
                           "  - name: team.b_2\n"
                           "    token_sha256:\n      - " + kDigestB + "\n"
                           "    requests_per_second: 0.5\n"
                           "    burst: 3\n";
  absl::StatusOr<AuthConfig> c = AuthConfig::Parse(yaml, "auth.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->tenants.size(), 2u);
  EXPECT_EQ(c->tenants[0].name, "team-a");
  EXPECT_EQ(c->tenants[0].token_sha256.size(), 2u);
  EXPECT_EQ(c->tenants[0].max_upload_bytes, 1048576);
  EXPECT_DOUBLE_EQ(c->tenants[0].requests_per_second, 5);
  EXPECT_DOUBLE_EQ(c->tenants[0].burst, 10);  // default: 2 x rate
  EXPECT_EQ(c->tenants[1].name, "team.b_2");
  EXPECT_EQ(c->tenants[1].max_upload_bytes, 0);
  EXPECT_DOUBLE_EQ(c->tenants[1].burst, 3);
}

struct Hostile {
  const char* what;
  std::string yaml;
  std::string want;  // a substring of the error
};

TEST(AuthConfig, RefusesHostileConfigsNamingPathAndReason) {
  const std::string t = "tenants:\n  - name: a\n    token_sha256: [" + kDigestA + "]\n";
  const Hostile cases[] = {
      {"not yaml", "tenants: [unclosed", "not valid YAML"},
      {"scalar", "just text", "(top level): must be a mapping"},
      {"empty", "", "(top level): must be a mapping"},
      {"unknown top key", t + "admins: []\n", "admins: unknown key"},
      {"empty tenants", "tenants: []\n", "tenants: must be a non-empty list"},
      {"tenants map", "tenants: {a: 1}\n", "tenants: must be a non-empty list"},
      {"plaintext token", "tenants:\n  - name: a\n    token: hunter2\n", "tenants[0].token: plaintext tokens"},
      {"token not digest", "tenants:\n  - name: a\n    token_sha256: [hunter2]\n",
       "tenants[0].token_sha256[0]: not a sha256 digest"},
      {"upper-case digest", "tenants:\n  - name: a\n    token_sha256: [" + std::string(64, 'A') + "]\n",
       "not a sha256 digest"},
      {"no tokens", "tenants:\n  - name: a\n", "tenants[0]: token_sha256 is required"},
      {"no name", "tenants:\n  - token_sha256: [" + kDigestA + "]\n", "tenants[0]: name is required"},
      {"bad name", "tenants:\n  - name: ../etc\n    token_sha256: [" + kDigestA + "]\n", "tenants[0].name"},
      {"long name", "tenants:\n  - name: " + std::string(65, 'a') + "\n    token_sha256: [" + kDigestA + "]\n",
       "tenants[0].name"},
      {"duplicate name", t + "  - name: a\n    token_sha256: [" + kDigestB + "]\n",
       "tenants[1].name: tenant \"a\" listed twice"},
      {"shared digest", t + "  - name: b\n    token_sha256: [" + kDigestA + "]\n",
       "tenants[1].token_sha256: a digest appears twice"},
      {"negative rate", t + "    requests_per_second: -1\n", "requests_per_second: must be a finite number >= 0"},
      {"nan rate", t + "    requests_per_second: .nan\n", "requests_per_second: must be a finite number >= 0"},
      {"vanishing rate", t + "    requests_per_second: 1e-300\n", "requests_per_second: must be 0 (no limit) or at least 0.001"},
      {"inf upload", t + "    max_upload_bytes: .inf\n", "max_upload_bytes: must be a finite number >= 0"},
      {"fractional upload", t + "    max_upload_bytes: 1.5\n", "max_upload_bytes: must be a whole number"},
      {"huge upload", t + "    max_upload_bytes: 1e30\n", "max_upload_bytes: must be a whole number"},
      {"text rate", t + "    requests_per_second: fast\n", "\"fast\" is not a number"},
      {"burst without rate", t + "    burst: 5\n", "tenants[0].burst: needs requests_per_second > 0"},
      {"tiny burst", t + "    requests_per_second: 1\n    burst: 0.5\n", "burst: must be between 1 and 1e9"},
      {"unknown tenant key", t + "    admin: true\n", "tenants[0].admin: unknown key"},
      {"tenant list item scalar", "tenants: [a]\n", "tenants[0]: must be a mapping"},
  };
  for (const Hostile& h : cases) {
    absl::StatusOr<AuthConfig> c = AuthConfig::Parse(h.yaml, "cfg.yaml");
    ASSERT_FALSE(c.ok()) << h.what;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << h.what;
    EXPECT_NE(c.status().message().find(h.want), std::string::npos) << h.what << ": " << c.status().message();
    EXPECT_EQ(c.status().message().find("cfg.yaml: "), 0u) << h.what;
    EXPECT_EQ(c.status().message().find("hunter2"), std::string::npos) << h.what << " echoed the token";
  }
}

TEST(AuthConfig, LoadReadsFilesAndRefusesMissingOrHuge) {
  const auto dir = test_inputs::EmptyPerTestDir("authcfg_");
  const std::string ok = (dir / "auth.yaml").string();
  std::ofstream(ok) << "tenants:\n  - name: a\n    token_sha256: [" << kDigestA << "]\n";
  absl::StatusOr<AuthConfig> c = AuthConfig::Load(ok);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tenants.at(0).name, "a");

  EXPECT_EQ(AuthConfig::Load((dir / "missing.yaml").string()).status().code(), absl::StatusCode::kNotFound);
  const std::string huge = (dir / "huge.yaml").string();
  std::ofstream(huge) << "# " << std::string(2 << 20, 'x') << "\n";
  absl::StatusOr<AuthConfig> h = AuthConfig::Load(huge);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("larger than 1 MiB"), std::string::npos) << h.status();
}

}  // namespace
}  // namespace squeeze::auth
