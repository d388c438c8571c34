#include "workers/engine/formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

absl::Status Bad(const std::string& file, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", what));
}
absl::Status BadTensor(const std::string& file, const std::string& tensor, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": tensor ", tensor, ": ", what));
}

bool IsFloatType(DType d) { return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16; }

// Element count of `shape`, or nullopt-like false on overflow / negative dims.
bool CheckedNumel(const std::vector<int64_t>& shape, uint64_t* numel) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  *numel = n;
  return true;
}

struct Range {
  uint64_t begin, end;
  std::string name;
};

absl::StatusOr<SafetensorsFile> ParseHeader(const std::string& file, const uint8_t* data, size_t size,
                                            const std::shared_ptr<const void>& owner) {
  if (size < 8) {
    return Bad(file, absl::StrCat("file is ", size, " bytes, too short for the 8-byte header length"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];  // little-endian
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return Bad(file, absl::StrCat("header length ", header_len, " exceeds the limit of ",
                                  kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (header_len > size - 8) {
    return Bad(file, absl::StrCat("header length ", header_len, " exceeds the file size (", size, " bytes, ",
                                  size - 8, " after the length field)"));
  }
  const char* header_begin = reinterpret_cast<const char*>(data + 8);
  json header;
  try {
    header = json::parse(header_begin, header_begin + header_len);
  } catch (const json::exception& e) {
    return Bad(file, absl::StrCat("header is not valid JSON: ", e.what()));
  }
  if (!header.is_object()) return Bad(file, "header is not a JSON object");

  const uint8_t* buffer = data + 8 + header_len;
  const uint64_t buffer_size = size - 8 - header_len;

  SafetensorsFile out;
  out.path = file;
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) return Bad(file, "__metadata__ is not a JSON object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) {
          return Bad(file, absl::StrCat("__metadata__ value for \"", m.key(), "\" is not a string"));
        }
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) return BadTensor(file, name, "entry is not a JSON object");
    for (auto f = entry.begin(); f != entry.end(); ++f) {
      if (f.key() != "dtype" && f.key() != "shape" && f.key() != "data_offsets") {
        return BadTensor(file, name, absl::StrCat("unknown field \"", f.key(), "\""));
      }
    }
    // dtype
    auto d = entry.find("dtype");
    if (d == entry.end() || !d->is_string()) return BadTensor(file, name, "missing string \"dtype\"");
    auto dtype = ParseDTypeName(d->get<std::string>());
    if (!dtype.ok()) return BadTensor(file, name, dtype.status().message());
    // shape
    auto s = entry.find("shape");
    if (s == entry.end() || !s->is_array()) return BadTensor(file, name, "missing array \"shape\"");
    TensorView view;
    view.dtype = *dtype;
    for (const json& dim : *s) {
      if (!dim.is_number_integer()) {
        return BadTensor(file, name, absl::StrCat("shape ", s->dump(), " has a non-integer dimension"));
      }
      if (dim.is_number_unsigned()) {
        const uint64_t v = dim.get<uint64_t>();
        if (v > static_cast<uint64_t>(INT64_MAX)) {
          return BadTensor(file, name,
                           absl::StrCat("shape ", s->dump(), " has a dimension that is too large"));
        }
        view.shape.push_back(static_cast<int64_t>(v));
      } else {
        const int64_t v = dim.get<int64_t>();
        if (v < 0)
          return BadTensor(file, name, absl::StrCat("shape ", s->dump(), " has a negative dimension"));
        view.shape.push_back(v);
      }
    }
    uint64_t numel = 0, nbytes = 0;
    if (!CheckedNumel(view.shape, &numel) ||
        __builtin_mul_overflow(numel, static_cast<uint64_t>(DTypeSize(view.dtype)), &nbytes) ||
        numel > static_cast<uint64_t>(INT64_MAX)) {
      return BadTensor(file, name, absl::StrCat("shape ", s->dump(), " overflows"));
    }
    // data_offsets
    auto o = entry.find("data_offsets");
    if (o == entry.end() || !o->is_array() || o->size() != 2 || !(*o)[0].is_number_unsigned() ||
        !(*o)[1].is_number_unsigned()) {
      return BadTensor(file, name, "\"data_offsets\" must be two non-negative integers");
    }
    const uint64_t begin = (*o)[0].get<uint64_t>(), end = (*o)[1].get<uint64_t>();
    if (begin > end) {
      return BadTensor(file, name, absl::StrCat("data_offsets [", begin, ", ", end, "] are reversed"));
    }
    if (end > buffer_size) {
      return BadTensor(file, name,
                       absl::StrCat("data_offsets [", begin, ", ", end, "] run past the end of the data (",
                                    buffer_size, " bytes; file truncated?)"));
    }
    if (end - begin != nbytes) {
      return BadTensor(
          file, name,
          absl::StrCat("shape ", ShapeString(view.shape), " of ", DTypeName(view.dtype), " needs ", nbytes,
                       " bytes but data_offsets [", begin, ", ", end, "] span ", end - begin));
    }
    view.data = buffer + begin;
    view.nbytes = nbytes;
    view.owner = owner;
    ranges.push_back({begin, end, name});
    out.tensors.emplace(name, std::move(view));
  }

  // The byte ranges must tile [0, buffer_size) exactly.
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const Range* prev = nullptr;
  for (const Range& r : ranges) {
    if (r.begin < pos) {
      return BadTensor(file, r.name,
                       absl::StrCat("data_offsets [", r.begin, ", ", r.end, "] overlap tensor ", prev->name,
                                    " [", prev->begin, ", ", prev->end, "]"));
    }
    if (r.begin > pos) {
      return BadTensor(file, r.name,
                       absl::StrCat("data_offsets [", r.begin, ", ", r.end, "] leave a gap of ",
                                    r.begin - pos, " bytes before it"));
    }
    pos = r.end;
    prev = &r;
  }
  if (pos != buffer_size) {
    return Bad(file, absl::StrCat("tensors cover ", pos, " bytes of the ", buffer_size, "-byte data buffer; ",
                                  buffer_size - pos, " trailing bytes belong to no tensor"));
  }
  return out;
}

// Streams `entry`'s bytes (converted to entry.dtype) into `writer`.
absl::Status StreamTensor(const std::string& path, const SafetensorsEntry& entry, AtomicFileWriter& writer) {
  const TensorView& v = entry.view;
  if (v.nbytes == 0) return absl::OkStatus();
  const auto* src = static_cast<const char*>(v.data);
  if (v.dtype == entry.dtype) {
    return writer.Append(absl::string_view(src, v.nbytes));
  }
  constexpr int64_t kChunk = 1 << 16;  // elements per conversion chunk
  const int64_t n = v.numel();
  const size_t in_size = DTypeSize(v.dtype);
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    TensorView chunk;
    chunk.dtype = v.dtype;
    chunk.shape = {m};
    chunk.data = src + i * in_size;
    chunk.nbytes = static_cast<size_t>(m) * in_size;
    SQ_ASSIGN_OR_RETURN(std::vector<float> values, ToFloat32(chunk, entry.name));
    SQ_ASSIGN_OR_RETURN(std::string bytes, FromFloat32(values.data(), m, entry.dtype));
    SQ_RETURN_IF_ERROR(writer.Append(bytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SafetensorsFile> ParseSafetensors(const std::string& name, const uint8_t* data, size_t size,
                                                 std::shared_ptr<const void> owner) {
  return ParseHeader(name, data, size, owner);
}

absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path) {
  SQ_ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> file, MappedFile::Open(path));
  const uint8_t* data = file->data();
  const size_t size = file->size();
  return ParseHeader(path, data, size, std::shared_ptr<const void>(file));
}

SafetensorsEntry StoredAs(std::string name, TensorView view) {
  const DType d = view.dtype;
  return SafetensorsEntry{std::move(name), std::move(view), d};
}

SafetensorsEntry StoredAs(std::string name, TensorView view, DType dtype) {
  return SafetensorsEntry{std::move(name), std::move(view), dtype};
}

int64_t StoredBytes(const SafetensorsEntry& entry) {
  return entry.view.numel() * static_cast<int64_t>(DTypeSize(entry.dtype));
}

absl::Status WriteSafetensors(const std::string& path, std::vector<SafetensorsEntry> entries,
                              const std::map<std::string, std::string>& metadata) {
  std::sort(entries.begin(), entries.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.name < b.name; });
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const SafetensorsEntry& e = entries[i];
    if (e.name.empty() || e.name == "__metadata__") {
      return absl::InvalidArgumentError(absl::StrCat(path, ": invalid tensor name \"", e.name, "\""));
    }
    if (i > 0 && entries[i - 1].name == e.name) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", e.name, " given twice"));
    }
    uint64_t numel = 0;
    if (!CheckedNumel(e.view.shape, &numel) || numel * DTypeSize(e.view.dtype) != e.view.nbytes) {
      return BadTensor(path, e.name,
                       absl::StrCat("shape ", ShapeString(e.view.shape), " of ", DTypeName(e.view.dtype),
                                    " does not match ", e.view.nbytes, " bytes"));
    }
    if (e.view.nbytes > 0 && e.view.data == nullptr) return BadTensor(path, e.name, "null data");
    if (e.dtype != e.view.dtype && !(IsFloatType(e.dtype) && IsFloatType(e.view.dtype))) {
      return BadTensor(path, e.name,
                       absl::StrCat("cannot convert ", DTypeName(e.view.dtype), " to ", DTypeName(e.dtype)));
    }
    const uint64_t bytes = numel * DTypeSize(e.dtype);
    ordered_json t = ordered_json::object();
    t["dtype"] = std::string(DTypeName(e.dtype));
    t["shape"] = e.view.shape;
    t["data_offsets"] = {offset, offset + bytes};
    header[e.name] = std::move(t);
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  char len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);

  SQ_ASSIGN_OR_RETURN(AtomicFileWriter writer, AtomicFileWriter::Create(path));
  SQ_RETURN_IF_ERROR(writer.Append(absl::string_view(len, 8)));
  SQ_RETURN_IF_ERROR(writer.Append(text));
  for (const SafetensorsEntry& e : entries) SQ_RETURN_IF_ERROR(StreamTensor(path, e, writer));
  if (writer.bytes_written() != 8 + n + offset) {
    return absl::InternalError(
        absl::StrCat(path, ": wrote ", writer.bytes_written(), " bytes, expected ", 8 + n + offset));
  }
  return writer.Commit();
}

absl::Status WriteSafetensorsMap(const std::string& path, const std::map<std::string, TensorView>& tensors,
                                 const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsEntry> entries;
  entries.reserve(tensors.size());
  for (const auto& [name, view] : tensors) entries.push_back(StoredAs(name, view));
  return WriteSafetensors(path, std::move(entries), metadata);
}

}  // namespace squeeze
