// A coordinator Clock that moves only when a test advances it, so lease
// expiry and durations are exact and no test waits on wall time.
#pragma once

#include <cstdint>

#include "server/coordinator/coordinator.h"

namespace squeeze::test_inputs {

class ManualClock : public server::Clock {
 public:
  int64_t MonotonicMs() override { return now_; }           // ms, starts at 1000
  int64_t UnixMs() override { return 1'700'000'000'000 + now_; }
  void Advance(int64_t ms) { now_ += ms; }

 private:
  int64_t now_ = 1000;
};

}  // namespace squeeze::test_inputs
