#include "workers/kernels/cpu/cpu_features.h"

#include <gtest/gtest.h>

namespace squeeze::kernels {
namespace {

TEST(CpuFeatures, SupportedIsasStartWithReferenceAndAreOrdered) {
  const std::vector<KernelIsa> isas = SupportedIsas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), KernelIsa::kReference);
  for (size_t i = 1; i < isas.size(); ++i) EXPECT_LT(static_cast<int>(isas[i - 1]), static_cast<int>(isas[i]));
  EXPECT_EQ(isas.back(), BestSupportedIsa());
  EXPECT_EQ(CpuHasAvx512(), BestSupportedIsa() == KernelIsa::kAvx512);
  if (CpuHasAvx512Vnni()) {
    EXPECT_TRUE(CpuHasAvx512());
  }
}

TEST(CpuFeatures, ScopedOverrideSetsClampsAndRestores) {
  const KernelIsa before = ActiveIsa();
  {
    ScopedKernelIsa ref(KernelIsa::kReference);
    EXPECT_EQ(ActiveIsa(), KernelIsa::kReference);
    {
      // Asking for more than the CPU has gives the best it has.
      ScopedKernelIsa top(KernelIsa::kAvx512);
      EXPECT_EQ(ActiveIsa(), BestSupportedIsa());
    }
    EXPECT_EQ(ActiveIsa(), KernelIsa::kReference);
  }
  EXPECT_EQ(ActiveIsa(), before);
  EXPECT_STREQ(KernelIsaName(KernelIsa::kAvx2), "avx2");
}

}  // namespace
}  // namespace squeeze::kernels
