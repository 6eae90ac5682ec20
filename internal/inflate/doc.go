// Package inflate decompresses gzip streams (RFC 1952) of DEFLATE data
// (RFC 1951), the compression of most image layers, faster than
// compress/gzip and github.com/klauspost/compress/gzip: 1.8 times
// klauspost's speed on the data of the benchmarks' layers (bench/, the
// machine's limits), 1.3 to 1.6 times in this package's BenchmarkDecode.
// Decompression is most of an unpack's time.
//
// It decodes as libdeflate does: a 64-bit bit buffer refilled a word at a
// time, Huffman tables whose entries hold the decoded symbol (a literal, or
// a length or distance with its extra bits), up to three literals per
// refill, and matches copied a word at a time into one output buffer that
// holds the window as well, so the decoded bytes are copied once, to the
// caller. Its main loop checks for input once per symbol: the input is
// followed by zero padding, and a stream that takes bits from the padding
// is cut short.
//
// It accepts and refuses what compress/gzip does, with the same errors;
// the tests compare the two on valid, truncated and corrupted streams.
package inflate
