// The few XML reads the S3 backend needs: the text of elements in S3's flat
// response documents (UploadId, Key, Code, Message, IsTruncated, ...). Not a
// general XML parser: no attributes, no CDATA; the five predefined entities and
// numeric character references are decoded.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace squeeze::store {

// Text of every <tag>...</tag> (also <ns:tag ...>), in document order.
std::vector<std::string> S3XmlValues(absl::string_view xml, absl::string_view tag);
// The first one, or "" when there is none.
std::string S3XmlValue(absl::string_view xml, absl::string_view tag);
// Escapes & < > " ' for element text.
std::string S3XmlEscape(absl::string_view text);

}  // namespace squeeze::store
