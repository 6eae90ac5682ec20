package inflate

import (
	"bytes"
	stdflate "compress/flate"
	stdgzip "compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	kgzip "github.com/klauspost/compress/gzip"
)

// sample returns n bytes that compress in every way DEFLATE has: text,
// runs, random bytes and short repeats.
func sample(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := []string{"layer", "blob", "manifest", "index", "digest", "sha256", " ", "\n", "the", "of", "registry"}
	var b bytes.Buffer
	for b.Len() < n {
		switch r.IntN(5) {
		case 0:
			for range r.IntN(200) {
				b.WriteString(words[r.IntN(len(words))])
			}
		case 1:
			b.Write(bytes.Repeat([]byte{byte(r.IntN(256))}, r.IntN(600)))
		case 2:
			p := make([]byte, r.IntN(3000))
			for i := range p {
				p[i] = byte(r.Uint32())
			}
			b.Write(p)
		case 3:
			if b.Len() > 0 {
				from := r.IntN(b.Len())
				b.Write(bytes.Clone(b.Bytes()[from:min(b.Len(), from+r.IntN(400))]))
			}
		default:
			w := words[r.IntN(len(words))]
			pat := []byte(w)[:1+r.IntN(min(2, len(w)))]
			b.Write(bytes.Repeat(pat, r.IntN(100)))
		}
	}
	return b.Bytes()[:n]
}

// text returns n bytes of lines of words drawn from a small vocabulary,
// as the benchmarks' layers hold: it compresses about 3:1, mostly into
// short matches.
func text(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	words := strings.Fields(`the of and to in is that for it as was with be by on not he this are
	or his from at which but have an they you were her she there one all we their been has would
	when if more will no out so said what up its about into than them can only other new some could
	time these two may then do first any my now such like our over man me even most made after also
	func return err nil struct package import string int`)
	var b bytes.Buffer
	for b.Len() < n {
		for i := range 4 + r.IntN(10) {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		b.WriteString(".\n")
	}
	return b.Bytes()[:n]
}

// compressors produce gzip streams in several ways: each level of both
// encoders gives other block types and codes.
var compressors = map[string]func(p []byte) []byte{
	"std-store": stdLevel(stdgzip.NoCompression),
	"std-1":     stdLevel(1),
	"std-6":     stdLevel(6),
	"std-9":     stdLevel(9),
	"std-huff":  stdLevel(stdgzip.HuffmanOnly),
	"kp-1":      kpLevel(1),
	"kp-6":      kpLevel(6),
	"kp-huff":   kpLevel(kgzip.HuffmanOnly),
	"std-multi": func(p []byte) []byte {
		// Two members, the second with every header field.
		var b bytes.Buffer
		zw := stdgzip.NewWriter(&b)
		zw.Write(p[:len(p)/2])
		zw.Close()
		zw = stdgzip.NewWriter(&b)
		zw.Name, zw.Comment, zw.Extra = "layer.tar", "a comment", []byte("extra")
		zw.Write(p[len(p)/2:])
		zw.Close()
		return b.Bytes()
	},
	"std-flush": func(p []byte) []byte {
		// Sync flushes give empty stored blocks mid-stream.
		var b bytes.Buffer
		zw := stdgzip.NewWriter(&b)
		for len(p) > 0 {
			n := min(len(p), 777)
			zw.Write(p[:n])
			zw.Flush()
			p = p[n:]
		}
		zw.Close()
		return b.Bytes()
	},
}

func stdLevel(level int) func([]byte) []byte {
	return func(p []byte) []byte {
		var b bytes.Buffer
		zw, _ := stdgzip.NewWriterLevel(&b, level)
		zw.Write(p)
		zw.Close()
		return b.Bytes()
	}
}

func kpLevel(level int) func([]byte) []byte {
	return func(p []byte) []byte {
		var b bytes.Buffer
		zw, _ := kgzip.NewWriterLevel(&b, level)
		zw.Write(p)
		zw.Close()
		return b.Bytes()
	}
}

// decodeAll reads all of a gzip stream with this package, through
// readers that hand out input and take output in odd pieces.
func decodeAll(gz []byte, wrap func(io.Reader) io.Reader) ([]byte, error) {
	zr, err := NewReader(wrap(bytes.NewReader(gz)))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = io.CopyBuffer(&out, zr, make([]byte, 777))
	return out.Bytes(), err
}

// stdDecodeAll reads all of a gzip stream with compress/gzip.
func stdDecodeAll(gz []byte) ([]byte, error) {
	zr, err := stdgzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

var wrappers = map[string]func(io.Reader) io.Reader{
	"whole":    func(r io.Reader) io.Reader { return r },
	"bytewise": iotest.OneByteReader,
	"halves":   iotest.HalfReader,
}

func TestDecodeMatchesStd(t *testing.T) {
	// The largest is more than the output buffer, which slides once.
	inputs := map[string]func(seed uint64, n int) []byte{"sample": sample, "text": text}
	for _, n := range []int{0, 1, 100, 70 << 10, outSize + 300<<10} {
		for kind, gen := range inputs {
			in := gen(uint64(n), n)
			for name, compress := range compressors {
				gz := compress(in)
				for wname, wrap := range wrappers {
					if wname == "bytewise" && n > 100<<10 {
						continue
					}
					t.Run(fmt.Sprintf("%s/%d/%s/%s", kind, n, name, wname), func(t *testing.T) {
						got, err := decodeAll(gz, wrap)
						if err != nil {
							t.Fatalf("decode: %v", err)
						}
						if !bytes.Equal(got, in) {
							t.Fatalf("decoded %d bytes, want %d, first difference at %d", len(got), len(in), firstDiff(got, in))
						}
					})
				}
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestTruncated cuts a stream at every length: each cut is an error, and
// what was handed out before it is a prefix of the data.
func TestTruncated(t *testing.T) {
	in := sample(7, 3000)
	for name, compress := range compressors {
		gz := compress(in)
		for cut := 0; cut < len(gz); cut++ {
			if cut > 300 && cut < len(gz)-300 && cut%5 != 0 {
				continue // every cut near the ends, and a fifth of those between
			}
			got, err := decodeAll(gz[:cut], wrappers["whole"])
			if cut == 0 {
				if err != io.EOF {
					t.Fatalf("%s: empty input: got %v, want io.EOF", name, err)
				}
				continue
			}
			if name == "std-multi" && isMemberEnd(gz, cut) {
				continue // a whole first member is a whole stream
			}
			if err == nil {
				t.Fatalf("%s: cut at %d of %d: no error", name, cut, len(gz))
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, stdgzip.ErrChecksum) {
				t.Fatalf("%s: cut at %d of %d: %v, want io.ErrUnexpectedEOF", name, cut, len(gz), err)
			}
			if !bytes.HasPrefix(in, got) {
				t.Fatalf("%s: cut at %d: handed out %d bytes that are not the data's", name, cut, len(got))
			}
		}
	}
}

// isMemberEnd reports whether gz[:cut] is a whole number of members.
func isMemberEnd(gz []byte, cut int) bool {
	zr, err := stdgzip.NewReader(bytes.NewReader(gz[:cut]))
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, zr)
	return err == nil
}

// TestCorrupt flips bytes of streams: wherever compress/gzip fails, this
// package fails too, and wherever both succeed, they agree.
func TestCorrupt(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	in := sample(11, 8<<10)
	for name, compress := range compressors {
		gz := compress(in)
		for range 300 {
			bad := bytes.Clone(gz)
			for range 1 + r.IntN(3) {
				i := r.IntN(len(bad))
				bad[i] ^= byte(1 + r.IntN(255))
			}
			compareStd(t, name, bad)
		}
	}
}

// compareStd decodes gz with both packages and fails where they disagree
// on success, or where a successful output differs.
func compareStd(t *testing.T, name string, gz []byte) {
	t.Helper()
	want, werr := stdDecodeAll(gz)
	got, gerr := decodeAll(gz, wrappers["whole"])
	switch {
	case werr == nil && gerr == nil:
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: both succeed, outputs differ at %d", name, firstDiff(got, want))
		}
	case werr == nil:
		t.Fatalf("%s: compress/gzip succeeds, this package fails: %v", name, gerr)
	case gerr == nil:
		t.Fatalf("%s: this package succeeds, compress/gzip fails: %v", name, werr)
	default:
		if !bytes.HasPrefix(want, got) && !bytes.HasPrefix(got, want) {
			t.Fatalf("%s: both fail (%v; %v), and neither output is a prefix of the other", name, gerr, werr)
		}
	}
}

func TestErrors(t *testing.T) {
	good := stdLevel(6)(sample(1, 1000))
	for _, tc := range []struct {
		name string
		gz   []byte
		want error
	}{
		{"bad magic", append([]byte{0x1f, 0x8c}, good[2:]...), stdgzip.ErrHeader},
		{"bad method", append([]byte{0x1f, 0x8b, 7}, good[3:]...), stdgzip.ErrHeader},
		{"bad crc", append(bytes.Clone(good[:len(good)-8]), 0, 0, 0, 0, good[len(good)-4], good[len(good)-3], good[len(good)-2], good[len(good)-1]), stdgzip.ErrChecksum},
		{"bad size", append(bytes.Clone(good[:len(good)-4]), 1, 2, 3, 4), stdgzip.ErrChecksum},
		{"garbage after", append(bytes.Clone(good), "garbage!!!"...), stdgzip.ErrHeader},
		{"block type 3", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0}, stdflate.CorruptInputError(0)},
		{"stored length", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x01, 5, 0, 5, 0, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0, 0, 0}, stdflate.CorruptInputError(0)},
		{"distance before start", stdflateRaw(t, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, func(w *bitWriter) {
			// A fixed block: length 3 (symbol 257, 7 bits 0000001), distance 1 (code 00000).
			w.bits(1, 1)
			w.bits(1, 2)
			w.rev(1, 7)
			w.rev(0, 5)
		}), stdflate.CorruptInputError(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeAll(tc.gz, wrappers["whole"])
			var ce stdflate.CorruptInputError
			if _, ok := tc.want.(stdflate.CorruptInputError); ok {
				if !errors.As(err, &ce) {
					t.Fatalf("got %v, want a flate.CorruptInputError", err)
				}
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			compareStd(t, tc.name, tc.gz)
		})
	}
}

// bitWriter writes DEFLATE bits, from the bottom of each byte.
type bitWriter struct {
	b    []byte
	nbit uint
}

// bits writes the n low bits of v, least significant first.
func (w *bitWriter) bits(v uint32, n uint) {
	for i := range n {
		if w.nbit%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (w.nbit % 8)
		w.nbit++
	}
}

// rev writes a Huffman code of n bits, most significant first.
func (w *bitWriter) rev(code uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.bits(code>>uint(i)&1, 1)
	}
}

func stdflateRaw(t *testing.T, header []byte, body func(*bitWriter)) []byte {
	t.Helper()
	var w bitWriter
	body(&w)
	return append(append(bytes.Clone(header), w.b...), make([]byte, 8)...)
}

func TestReadAfterEOF(t *testing.T) {
	zr, err := NewReader(bytes.NewReader(stdLevel(6)([]byte("hello, world"))))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || string(got) != "hello, world" {
		t.Fatalf("got %q, %v", got, err)
	}
	if n, err := zr.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read after the end: %d, %v; want 0, io.EOF", n, err)
	}
}

// TestReaderError passes the input reader's error on, not a format error.
func TestReaderError(t *testing.T) {
	gz := stdLevel(6)(sample(5, 200<<10))
	boom := errors.New("boom")
	zr, err := NewReader(io.MultiReader(bytes.NewReader(gz[:len(gz)/2]), iotest.ErrReader(boom)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, zr); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
}

func FuzzDecode(f *testing.F) {
	in := sample(2, 3000)
	for _, name := range []string{"std-1", "std-9", "std-huff", "kp-6", "std-multi", "std-flush"} {
		f.Add(compressors[name](in))
	}
	f.Fuzz(func(t *testing.T, gz []byte) {
		compareStd(t, "fuzz", gz)
	})
}

func BenchmarkDecode(b *testing.B) {
	in := benchData()
	gz := kpLevel(6)(in)
	for _, bc := range []struct {
		name string
		open func(io.Reader) (io.Reader, error)
	}{
		{"pullkit", func(r io.Reader) (io.Reader, error) { return NewReader(r) }},
		{"klauspost", func(r io.Reader) (io.Reader, error) { return kgzip.NewReader(r) }},
		{"std", func(r io.Reader) (io.Reader, error) { return stdgzip.NewReader(r) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			buf := make([]byte, 1<<20)
			for b.Loop() {
				zr, err := bc.open(bytes.NewReader(gz))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, zr, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchData is like the benchmarks' layers: segments of 256 KiB of random
// bytes and of text, alternating.
func benchData() []byte {
	r := rand.New(rand.NewPCG(9, 9))
	words := text(9, 1<<20)
	var b bytes.Buffer
	for i := 0; b.Len() < 32<<20; i++ {
		seg := make([]byte, 256<<10)
		if i%2 == 0 {
			for j := range seg {
				seg[j] = byte(r.Uint32())
			}
		} else {
			off := r.IntN(len(words) - len(seg))
			copy(seg, words[off:])
		}
		b.Write(seg)
	}
	return b.Bytes()
}
