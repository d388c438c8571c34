#include "workers/engine/formats/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/mapped_file.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze {
namespace {

// Size in bytes of a fixed-size element type; 0 for string / array.
size_t FixedSize(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

bool KnownType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }
bool IsIntType(GgufType t) {
  return t != GgufType::kFloat32 && t != GgufType::kFloat64 && t != GgufType::kString && t != GgufType::kArray;
}
bool IsFloatType(GgufType t) { return t == GgufType::kFloat32 || t == GgufType::kFloat64; }

// Bounds-checked little-endian cursor over the file.
class Cursor {
 public:
  Cursor(const std::string& name, const uint8_t* data, size_t size) : name_(name), data_(data), size_(size) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  absl::Status Error(absl::string_view where, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": GGUF ", where, ": ", what, " (at byte ", pos_, ")"));
  }

  absl::Status Need(uint64_t n, absl::string_view where) const {
    if (n > remaining()) {
      return Error(where, absl::StrCat("needs ", n, " bytes but only ", remaining(), " remain (truncated file?)"));
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::StatusOr<T> Read(absl::string_view where) {
    SQ_RETURN_IF_ERROR(Need(sizeof(T), where));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  absl::StatusOr<std::string> ReadString(absl::string_view where) {
    SQ_ASSIGN_OR_RETURN(uint64_t n, Read<uint64_t>(where));
    if (n > remaining()) {
      return Error(where, absl::StrCat("string length ", n, " exceeds the ", remaining(), " bytes left (truncated file?)"));
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += n;
    return s;
  }

  // One scalar element of type t appended to v.
  absl::Status ReadElement(GgufType t, GgufValue& v, absl::string_view where) {
    switch (t) {
      case GgufType::kUint8: {
        SQ_ASSIGN_OR_RETURN(uint8_t x, Read<uint8_t>(where));
        v.ints.push_back(x);
        return absl::OkStatus();
      }
      case GgufType::kInt8: {
        SQ_ASSIGN_OR_RETURN(int8_t x, Read<int8_t>(where));
        v.ints.push_back(x);
        return absl::OkStatus();
      }
      case GgufType::kBool: {
        SQ_ASSIGN_OR_RETURN(uint8_t x, Read<uint8_t>(where));
        if (x > 1) return Error(where, absl::StrCat("bool value ", int{x}, " is neither 0 nor 1"));
        v.ints.push_back(x);
        return absl::OkStatus();
      }
      case GgufType::kUint16: {
        SQ_ASSIGN_OR_RETURN(uint16_t x, Read<uint16_t>(where));
        v.ints.push_back(x);
        return absl::OkStatus();
      }
      case GgufType::kInt16: {
        SQ_ASSIGN_OR_RETURN(int16_t x, Read<int16_t>(where));
        v.ints.push_back(x);
        return absl::OkStatus();
      }
      case GgufType::kUint32: {
        SQ_ASSIGN_OR_RETURN(uint32_t x, Read<uint32_t>(where));
        v.ints.push_back(x);
        return absl::OkStatus();
      }
      case GgufType::kInt32: {
        SQ_ASSIGN_OR_RETURN(int32_t x, Read<int32_t>(where));
        v.ints.push_back(x);
        return absl::OkStatus();
      }
      case GgufType::kUint64: {
        SQ_ASSIGN_OR_RETURN(uint64_t x, Read<uint64_t>(where));
        if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return Error(where, absl::StrCat("uint64 value ", x, " is larger than this reader supports (2^63 - 1)"));
        }
        v.ints.push_back(static_cast<int64_t>(x));
        return absl::OkStatus();
      }
      case GgufType::kInt64: {
        SQ_ASSIGN_OR_RETURN(int64_t x, Read<int64_t>(where));
        v.ints.push_back(x);
        return absl::OkStatus();
      }
      case GgufType::kFloat32: {
        SQ_ASSIGN_OR_RETURN(float x, Read<float>(where));
        v.floats.push_back(x);
        return absl::OkStatus();
      }
      case GgufType::kFloat64: {
        SQ_ASSIGN_OR_RETURN(double x, Read<double>(where));
        v.floats.push_back(x);
        return absl::OkStatus();
      }
      case GgufType::kString: {
        SQ_ASSIGN_OR_RETURN(std::string s, ReadString(where));
        v.strings.push_back(std::move(s));
        return absl::OkStatus();
      }
      case GgufType::kArray:
        return Error(where, "nested arrays are not supported");
    }
    return Error(where, "unknown value type");
  }

  absl::StatusOr<GgufValue> ReadValue(absl::string_view where) {
    SQ_ASSIGN_OR_RETURN(uint32_t t, Read<uint32_t>(where));
    if (!KnownType(t)) return Error(where, absl::StrCat("unknown value type ", t));
    GgufValue v;
    v.type = static_cast<GgufType>(t);
    if (v.type != GgufType::kArray) {
      SQ_RETURN_IF_ERROR(ReadElement(v.type, v, where));
      return v;
    }
    SQ_ASSIGN_OR_RETURN(uint32_t et, Read<uint32_t>(where));
    if (!KnownType(et)) return Error(where, absl::StrCat("unknown array element type ", et));
    v.elem_type = static_cast<GgufType>(et);
    if (v.elem_type == GgufType::kArray) return Error(where, "nested arrays are not supported");
    SQ_ASSIGN_OR_RETURN(uint64_t n, Read<uint64_t>(where));
    // Every element takes at least one byte (a string at least 8): the count
    // is bounded by what remains before anything is allocated.
    const uint64_t min_size = v.elem_type == GgufType::kString ? 8 : FixedSize(v.elem_type);
    if (n > remaining() / min_size) {
      return Error(where, absl::StrCat("array of ", n, " ", GgufTypeName(v.elem_type), " elements needs more than the ",
                                       remaining(), " bytes left"));
    }
    if (v.elem_type == GgufType::kString) {
      v.strings.reserve(n);
    } else if (IsFloatType(v.elem_type)) {
      v.floats.reserve(n);
    } else {
      v.ints.reserve(n);
    }
    for (uint64_t i = 0; i < n; ++i) SQ_RETURN_IF_ERROR(ReadElement(v.elem_type, v, where));
    return v;
  }

 private:
  const std::string& name_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// ---- writing ---------------------------------------------------------------

template <typename T>
void Put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void PutString(std::string& out, absl::string_view s) {
  Put<uint64_t>(out, s.size());
  out.append(s.data(), s.size());
}

void PutElement(std::string& out, GgufType t, const GgufValue& v, size_t i) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kBool:
      return Put<uint8_t>(out, static_cast<uint8_t>(v.ints[i]));
    case GgufType::kInt8:
      return Put<int8_t>(out, static_cast<int8_t>(v.ints[i]));
    case GgufType::kUint16:
      return Put<uint16_t>(out, static_cast<uint16_t>(v.ints[i]));
    case GgufType::kInt16:
      return Put<int16_t>(out, static_cast<int16_t>(v.ints[i]));
    case GgufType::kUint32:
      return Put<uint32_t>(out, static_cast<uint32_t>(v.ints[i]));
    case GgufType::kInt32:
      return Put<int32_t>(out, static_cast<int32_t>(v.ints[i]));
    case GgufType::kUint64:
      return Put<uint64_t>(out, static_cast<uint64_t>(v.ints[i]));
    case GgufType::kInt64:
      return Put<int64_t>(out, v.ints[i]);
    case GgufType::kFloat32:
      return Put<float>(out, static_cast<float>(v.floats[i]));
    case GgufType::kFloat64:
      return Put<double>(out, v.floats[i]);
    case GgufType::kString:
      return PutString(out, v.strings[i]);
    case GgufType::kArray:
      return;
  }
}

// Checks a value is internally consistent (the writer's counterpart of the
// reader's checks); `key` names it in errors.
absl::Status CheckValue(const std::string& key, const GgufValue& v) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF metadata ", key, ": ", what));
  };
  const GgufType t = v.element_type();
  if (v.is_array() && v.elem_type == GgufType::kArray) return bad("nested arrays are not supported");
  const size_t n = IsIntType(t) ? v.ints.size() : IsFloatType(t) ? v.floats.size() : v.strings.size();
  const size_t others = v.ints.size() + v.floats.size() + v.strings.size() - n;
  if (others != 0) return bad("holds values of another type than its own");
  if (!v.is_array() && n != 1) return bad("a scalar must hold exactly one value");
  return absl::OkStatus();
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

absl::StatusOr<uint64_t> AlignmentOf(const std::vector<GgufKV>& metadata) {
  for (const GgufKV& kv : metadata) {
    if (kv.key != "general.alignment") continue;
    if (kv.value.type != GgufType::kUint32) {
      return absl::InvalidArgumentError("GGUF metadata general.alignment: must be a uint32");
    }
    const int64_t a = kv.value.ints[0];
    if (a < static_cast<int64_t>(kGgufMinAlignment) || (a & (a - 1)) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("GGUF metadata general.alignment: ", a,
                                                     " is not a power of two >= ", kGgufMinAlignment));
    }
    return static_cast<uint64_t>(a);
  }
  return kGgufDefaultAlignment;
}

// Header + metadata + tensor infos + padding, and each tensor's offset.
absl::StatusOr<std::string> SerializeHeader(const std::vector<GgufKV>& metadata,
                                            const std::vector<GgufTensorData>& tensors, uint64_t alignment) {
  std::string out;
  Put<uint32_t>(out, kGgufMagic);
  Put<uint32_t>(out, kGgufVersion);
  Put<uint64_t>(out, tensors.size());
  Put<uint64_t>(out, metadata.size());
  std::set<std::string> keys;
  for (const GgufKV& kv : metadata) {
    if (kv.key.empty() || !keys.insert(kv.key).second) {
      return absl::InvalidArgumentError(absl::StrCat("GGUF metadata key \"", kv.key, "\" is empty or repeated"));
    }
    SQ_RETURN_IF_ERROR(CheckValue(kv.key, kv.value));
    PutString(out, kv.key);
    Put<uint32_t>(out, static_cast<uint32_t>(kv.value.type));
    if (kv.value.is_array()) {
      Put<uint32_t>(out, static_cast<uint32_t>(kv.value.elem_type));
      Put<uint64_t>(out, static_cast<uint64_t>(kv.value.size()));
      for (int64_t i = 0; i < kv.value.size(); ++i) PutElement(out, kv.value.elem_type, kv.value, i);
    } else {
      PutElement(out, kv.value.type, kv.value, 0);
    }
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const GgufTensorData& t : tensors) {
    auto bad = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("GGUF tensor ", t.name, ": ", what));
    };
    if (t.name.empty() || t.name.size() > kGgufMaxTensorName) {
      return bad(absl::StrCat("name must be 1..", kGgufMaxTensorName, " bytes"));
    }
    if (!names.insert(t.name).second) return bad("repeated name");
    if (t.ne.empty() || t.ne.size() > 4) return bad("must have 1..4 dimensions");
    int64_t rows = 1;
    for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];
    for (int64_t d : t.ne) {
      if (d < 1) return bad("dimensions must be >= 1");
    }
    absl::StatusOr<int64_t> row_bytes = GgmlRowBytes(t.type, t.ne[0]);
    if (!row_bytes.ok()) return bad(row_bytes.status().message());
    if (static_cast<uint64_t>(*row_bytes * rows) != t.bytes.size()) {
      return bad(absl::StrCat("has ", t.bytes.size(), " bytes, its type ", GgmlTypeName(t.type), " and shape need ",
                              *row_bytes * rows));
    }
    PutString(out, t.name);
    Put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) Put<uint64_t>(out, static_cast<uint64_t>(d));
    Put<uint32_t>(out, static_cast<uint32_t>(t.type));
    Put<uint64_t>(out, offset);
    offset = AlignUp(offset + t.bytes.size(), alignment);
  }
  out.resize(AlignUp(out.size(), alignment), '\0');
  return out;
}

}  // namespace

absl::string_view GgufTypeName(GgufType type) {
  switch (type) {
    case GgufType::kUint8: return "uint8";
    case GgufType::kInt8: return "int8";
    case GgufType::kUint16: return "uint16";
    case GgufType::kInt16: return "int16";
    case GgufType::kUint32: return "uint32";
    case GgufType::kInt32: return "int32";
    case GgufType::kFloat32: return "float32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kUint64: return "uint64";
    case GgufType::kInt64: return "int64";
    case GgufType::kFloat64: return "float64";
  }
  return "?";
}

GgufValue GgufValue::Int(GgufType type, int64_t v) {
  GgufValue out;
  out.type = type;
  out.ints = {v};
  return out;
}
GgufValue GgufValue::F32(float v) {
  GgufValue out;
  out.type = GgufType::kFloat32;
  out.floats = {v};
  return out;
}
GgufValue GgufValue::F64(double v) {
  GgufValue out;
  out.type = GgufType::kFloat64;
  out.floats = {v};
  return out;
}
GgufValue GgufValue::Str(std::string v) {
  GgufValue out;
  out.type = GgufType::kString;
  out.strings = {std::move(v)};
  return out;
}
GgufValue GgufValue::IntArray(GgufType elem_type, std::vector<int64_t> v) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.elem_type = elem_type;
  out.ints = std::move(v);
  return out;
}
GgufValue GgufValue::F32Array(std::vector<float> v) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.elem_type = GgufType::kFloat32;
  out.floats.assign(v.begin(), v.end());
  return out;
}
GgufValue GgufValue::StrArray(std::vector<std::string> v) {
  GgufValue out;
  out.type = GgufType::kArray;
  out.elem_type = GgufType::kString;
  out.strings = std::move(v);
  return out;
}

int64_t GgufValue::size() const {
  const GgufType t = element_type();
  if (IsIntType(t)) return static_cast<int64_t>(ints.size());
  if (IsFloatType(t)) return static_cast<int64_t>(floats.size());
  return static_cast<int64_t>(strings.size());
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

const GgufValue* GgufFile::Find(absl::string_view key) const {
  for (const GgufKV& kv : metadata) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

const GgufTensorInfo* GgufFile::FindTensor(absl::string_view name) const {
  for (const GgufTensorInfo& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {

absl::Status KeyError(const GgufFile& f, absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(f.path, ": GGUF metadata ", key, ": ", what));
}

absl::StatusOr<const GgufValue*> Scalar(const GgufFile& f, absl::string_view key) {
  const GgufValue* v = f.Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(f.path, ": GGUF metadata ", key, ": missing"));
  if (v->is_array()) return KeyError(f, key, "is an array, expected a single value");
  return v;
}

}  // namespace

absl::StatusOr<int64_t> GgufFile::GetInt(absl::string_view key) const {
  SQ_ASSIGN_OR_RETURN(const GgufValue* v, Scalar(*this, key));
  if (!IsIntType(v->type) || v->type == GgufType::kBool) {
    return KeyError(*this, key, absl::StrCat("is a ", GgufTypeName(v->type), ", expected an integer"));
  }
  return v->ints[0];
}

absl::StatusOr<double> GgufFile::GetFloat(absl::string_view key) const {
  SQ_ASSIGN_OR_RETURN(const GgufValue* v, Scalar(*this, key));
  if (!IsFloatType(v->type)) {
    return KeyError(*this, key, absl::StrCat("is a ", GgufTypeName(v->type), ", expected float32 or float64"));
  }
  return v->floats[0];
}

absl::StatusOr<std::string> GgufFile::GetString(absl::string_view key) const {
  SQ_ASSIGN_OR_RETURN(const GgufValue* v, Scalar(*this, key));
  if (v->type != GgufType::kString) {
    return KeyError(*this, key, absl::StrCat("is a ", GgufTypeName(v->type), ", expected a string"));
  }
  return v->strings[0];
}

absl::StatusOr<bool> GgufFile::GetBool(absl::string_view key) const {
  SQ_ASSIGN_OR_RETURN(const GgufValue* v, Scalar(*this, key));
  if (v->type != GgufType::kBool) {
    return KeyError(*this, key, absl::StrCat("is a ", GgufTypeName(v->type), ", expected a bool"));
  }
  return v->ints[0] != 0;
}

absl::StatusOr<int64_t> GgufFile::GetIntOr(absl::string_view key, int64_t dflt) const {
  if (Find(key) == nullptr) return dflt;
  return GetInt(key);
}

absl::StatusOr<double> GgufFile::GetFloatOr(absl::string_view key, double dflt) const {
  if (Find(key) == nullptr) return dflt;
  return GetFloat(key);
}

absl::StatusOr<GgufFile> ParseGguf(const std::string& name, const uint8_t* data, size_t size,
                                   std::shared_ptr<const void> owner) {
  GgufFile f;
  f.path = name;
  f.owner = std::move(owner);
  Cursor c(f.path, data, size);
  SQ_ASSIGN_OR_RETURN(uint32_t magic, c.Read<uint32_t>("header"));
  if (magic != kGgufMagic) return c.Error("header", "bad magic (not a GGUF file)");
  SQ_ASSIGN_OR_RETURN(f.version, c.Read<uint32_t>("header"));
  if (f.version != 2 && f.version != 3) {
    return c.Error("header", absl::StrCat("version ", f.version, " is not supported (2 or 3)"));
  }
  SQ_ASSIGN_OR_RETURN(uint64_t n_tensors, c.Read<uint64_t>("header"));
  SQ_ASSIGN_OR_RETURN(uint64_t n_kv, c.Read<uint64_t>("header"));
  // A key/value takes at least 8 + 4 + 1 bytes, a tensor info 8 + 4 + 8 + 4 + 8.
  if (n_kv > c.remaining() / 13) {
    return c.Error("header", absl::StrCat("metadata_kv_count ", n_kv, " cannot fit in ", c.remaining(), " bytes (truncated file?)"));
  }
  if (n_tensors > c.remaining() / 32) {
    return c.Error("header", absl::StrCat("tensor_count ", n_tensors, " cannot fit in ", c.remaining(), " bytes (truncated file?)"));
  }
  std::set<std::string> keys;
  f.metadata.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string where = absl::StrCat("metadata entry ", i);
    SQ_ASSIGN_OR_RETURN(std::string key, c.ReadString(where));
    if (key.empty()) return c.Error(where, "empty key");
    if (!keys.insert(key).second) return c.Error(absl::StrCat("metadata ", key), "key appears twice");
    SQ_ASSIGN_OR_RETURN(GgufValue v, c.ReadValue(absl::StrCat("metadata ", key)));
    f.metadata.push_back({std::move(key), std::move(v)});
  }
  if (const GgufValue* a = f.Find("general.alignment")) {
    if (a->type != GgufType::kUint32) {
      return c.Error("metadata general.alignment", absl::StrCat("is a ", GgufTypeName(a->type), ", expected uint32"));
    }
    // The specification asks for a multiple of 8; smaller values would put
    // fp32 / fp16 / ggml block data at unaligned addresses.
    const int64_t v = a->ints[0];
    if (v < static_cast<int64_t>(kGgufMinAlignment) || (v & (v - 1)) != 0) {
      return c.Error("metadata general.alignment",
                     absl::StrCat(v, " is not a power of two >= ", kGgufMinAlignment));
    }
    f.alignment = static_cast<uint64_t>(v);
  }
  std::set<std::string> names;
  f.tensors.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    SQ_ASSIGN_OR_RETURN(t.name, c.ReadString(absl::StrCat("tensor info ", i)));
    const std::string where = absl::StrCat("tensor ", t.name);
    if (t.name.empty() || t.name.size() > kGgufMaxTensorName) {
      return c.Error(where, absl::StrCat("name must be 1..", kGgufMaxTensorName, " bytes"));
    }
    if (!names.insert(t.name).second) return c.Error(where, "name appears twice");
    SQ_ASSIGN_OR_RETURN(uint32_t n_dims, c.Read<uint32_t>(where));
    if (n_dims < 1 || n_dims > 4) return c.Error(where, absl::StrCat(n_dims, " dimensions (must be 1..4)"));
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      SQ_ASSIGN_OR_RETURN(uint64_t ne, c.Read<uint64_t>(where));
      if (ne < 1 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          static_cast<int64_t>(ne) > std::numeric_limits<int64_t>::max() / numel) {
        return c.Error(where, absl::StrCat("dimension ", d, " = ", ne, " is 0 or overflows the element count"));
      }
      numel *= static_cast<int64_t>(ne);
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    SQ_ASSIGN_OR_RETURN(uint32_t type_id, c.Read<uint32_t>(where));
    absl::StatusOr<GgmlTypeInfo> info = GgmlTypeInfoOf(type_id);
    if (!info.ok()) return c.Error(where, info.status().message());
    t.type = info->type;
    if (t.ne[0] % info->block_elems != 0) {
      return c.Error(where, absl::StrCat("ne[0] = ", t.ne[0], " is not a multiple of the ", info->name,
                                         " block size ", info->block_elems));
    }
    const int64_t blocks = numel / info->block_elems;
    if (blocks > std::numeric_limits<int64_t>::max() / info->block_bytes) {
      return c.Error(where, "byte size overflows");
    }
    t.nbytes = static_cast<uint64_t>(blocks * info->block_bytes);
    SQ_ASSIGN_OR_RETURN(t.offset, c.Read<uint64_t>(where));
    if (t.offset % f.alignment != 0) {
      return c.Error(where, absl::StrCat("offset ", t.offset, " is not a multiple of the alignment ", f.alignment));
    }
    f.tensors.push_back(std::move(t));
  }
  const uint64_t data_start = AlignUp(c.pos(), f.alignment);
  if (data_start > size && !f.tensors.empty()) {
    return c.Error("data section", absl::StrCat("starts at ", data_start, " beyond the end of the file (", size, ")"));
  }
  const uint64_t data_size = data_start <= size ? size - data_start : 0;
  // Bounds, then overlap (sorted by offset).
  std::vector<const GgufTensorInfo*> by_offset;
  for (GgufTensorInfo& t : f.tensors) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      return absl::InvalidArgumentError(absl::StrCat(f.path, ": GGUF tensor ", t.name, ": bytes [", t.offset, ", ",
                                                     t.offset + t.nbytes, ") of the data section lie beyond its ",
                                                     data_size, " bytes (truncated file?)"));
    }
    t.data = data + data_start + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo* prev = by_offset[i - 1];
    if (prev->nbytes > 0 && prev->offset + prev->nbytes > by_offset[i]->offset) {
      return absl::InvalidArgumentError(absl::StrCat(f.path, ": GGUF tensor ", by_offset[i]->name,
                                                     ": overlaps tensor ", prev->name, " in the data section"));
    }
  }
  return f;
}

absl::StatusOr<GgufFile> ReadGguf(const std::string& path) {
  SQ_ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> file, MappedFile::Open(path));
  const uint8_t* data = file->data();
  const size_t size = file->size();
  return ParseGguf(path, data, size, file);
}

absl::StatusOr<std::string> SerializeGguf(const std::vector<GgufKV>& metadata,
                                          const std::vector<GgufTensorData>& tensors) {
  SQ_ASSIGN_OR_RETURN(uint64_t alignment, AlignmentOf(metadata));
  SQ_ASSIGN_OR_RETURN(std::string out, SerializeHeader(metadata, tensors, alignment));
  for (const GgufTensorData& t : tensors) {
    out += t.bytes;
    out.resize(AlignUp(out.size(), alignment), '\0');
  }
  return out;
}

absl::Status WriteGguf(const std::string& path, const std::vector<GgufKV>& metadata,
                       const std::vector<GgufTensorData>& tensors) {
  SQ_ASSIGN_OR_RETURN(uint64_t alignment, AlignmentOf(metadata));
  absl::StatusOr<std::string> header = SerializeHeader(metadata, tensors, alignment);
  if (!header.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", header.status().message()));
  SQ_ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Create(path));
  SQ_RETURN_IF_ERROR(w.Append(*header));
  const std::string zeros(alignment, '\0');
  for (const GgufTensorData& t : tensors) {
    SQ_RETURN_IF_ERROR(w.Append(t.bytes));
    const uint64_t pad = AlignUp(t.bytes.size(), alignment) - t.bytes.size();
    if (pad > 0) SQ_RETURN_IF_ERROR(w.Append(absl::string_view(zeros.data(), pad)));
  }
  return w.Commit();
}

}  // namespace squeeze
