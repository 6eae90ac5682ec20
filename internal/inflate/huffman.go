package inflate

// A decode table maps the next bits of the stream to an entry: what the
// symbol means, already translated, and how many bits its code takes.
// Codes no longer than the table's main bits are found with one lookup;
// longer ones through a subtable the main entry points to.
//
// An entry is a uint32:
//
//	bits  0–5   the length of the code, in bits, subtable bits included
//	            (six bits, so that a shift by the entry masked with 63 is
//	            one instruction)
//	bit   6     a literal byte
//	bit   7     a pointer to a subtable
//	bits  8–12  the extra bits that follow a length or distance code, or
//	            the index bits of a subtable
//	bit   13    no valid symbol
//	bit   14    the end of the block
//	bits 16–31  the literal, the length or distance base, or the
//	            subtable's offset in the table
const (
	flagLiteral = 1 << 6
	flagSub     = 1 << 7
	flagInvalid = 1 << 13
	flagEOB     = 1 << 14
	lenMask     = 63

	litBits   = 11 // main bits of the literal/length table
	distBits  = 8  // main bits of the distance table
	preBits   = 7  // the code-length code's table is one level: its codes are at most 7 bits
	maxCode   = 15 // the longest code DEFLATE allows
	numLitLen = 288
	numDist   = 32
	numPre    = 19

	// The tables' sizes: the main table, then room for the subtables.
	// In a complete code, a subtable of 2^s entries takes at least s+1
	// codes of its own, so 288 codes fill at most 57 subtables of 16 (the
	// literal/length table, 4 bits under 11) and 32 codes at most 4 of 128
	// (the distance table, 7 bits under 8).
	litTableSize  = 1<<litBits + 1024
	distTableSize = 1<<distBits + 512
	preTableSize  = 1 << preBits
)

var (
	// lengthBase and lengthExtra give the length of symbols 257–285.
	lengthBase = [29]uint16{
		3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
		35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258,
	}
	lengthExtra = [29]uint8{
		0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
		3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
	}
	// distBase and distExtra give the distance of symbols 0–29.
	distBase = [30]uint16{
		1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
		257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
		8193, 12289, 16385, 24577,
	}
	distExtra = [30]uint8{
		0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
		7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
	}

	// litSymbols, distSymbols and preSymbols are each symbol's entry
	// before its code length is added.
	litSymbols, distSymbols, preSymbols = symbolEntries()

	// fixedLit and fixedDist decode the fixed codes of RFC 1951, 3.2.6.
	fixedLit, fixedDist = fixedTables()
)

func symbolEntries() (lit [numLitLen]uint32, dist [numDist]uint32, pre [numPre]uint32) {
	for s := range 256 {
		lit[s] = flagLiteral | uint32(s)<<16
	}
	lit[256] = flagEOB
	for i := range lengthBase {
		lit[257+i] = uint32(lengthExtra[i])<<8 | uint32(lengthBase[i])<<16
	}
	lit[286], lit[287] = flagInvalid, flagInvalid
	for i := range distBase {
		dist[i] = uint32(distExtra[i])<<8 | uint32(distBase[i])<<16
	}
	dist[30], dist[31] = flagInvalid, flagInvalid
	for s := range pre {
		pre[s] = uint32(s) << 16
	}
	return lit, dist, pre
}

func fixedTables() (lit *[litTableSize]uint32, dist *[distTableSize]uint32) {
	var lens [numLitLen]uint8
	for s := range lens {
		switch {
		case s < 144:
			lens[s] = 8
		case s < 256:
			lens[s] = 9
		case s < 280:
			lens[s] = 7
		default:
			lens[s] = 8
		}
	}
	lit, dist = new([litTableSize]uint32), new([distTableSize]uint32)
	if !buildTable(lit[:], litBits, lens[:], litSymbols[:]) {
		panic("inflate: fixed literal/length code")
	}
	var dlens [numDist]uint8
	for s := range dlens {
		dlens[s] = 5
	}
	if !buildTable(dist[:], distBits, dlens[:], distSymbols[:]) {
		panic("inflate: fixed distance code")
	}
	return lit, dist
}

// buildTable fills table, of main bits mainBits, to decode the canonical
// Huffman code of the code lengths lens, whose symbols mean syms. It
// reports false for a code compress/flate refuses too: one that gives more
// codes than there are bit strings, or leaves some bit strings unused
// (incomplete), except a code of one symbol of one bit. A code with no
// symbol at all is accepted; every lookup in its table finds flagInvalid.
func buildTable(table []uint32, mainBits uint, lens []uint8, syms []uint32) bool {
	var count [maxCode + 1]int
	maxLen := 0
	for _, l := range lens {
		if l != 0 {
			count[l]++
			maxLen = max(maxLen, int(l))
		}
	}
	mainSize := 1 << mainBits
	if maxLen == 0 {
		for i := range table[:mainSize] {
			table[i] = flagInvalid
		}
		return true
	}
	var next [maxCode + 1]int
	code := 0
	for l := 1; l <= maxLen; l++ {
		code <<= 1
		next[l] = code
		code += count[l]
	}
	single := code == 1 && maxLen == 1
	if code != 1<<maxLen && !single {
		return false
	}
	if single {
		// One bit string of one bit is unused.
		for i := range table[:mainSize] {
			table[i] = flagInvalid
		}
	}

	// The codes longer than mainBits share main entries by their first
	// mainBits bits: each such prefix gets a subtable as deep as its
	// longest code.
	var subDepth [1 << litBits]uint8 // by prefix; large enough for every table here
	var rev [numLitLen]uint16        // each symbol's code, bit-reversed as the stream holds it
	for s, l := range lens {
		if l == 0 {
			continue
		}
		c := next[l]
		next[l]++
		r := reverse(uint16(c), uint(l))
		rev[s] = r
		if uint(l) > mainBits {
			p := r & uint16(mainSize-1)
			subDepth[p] = max(subDepth[p], l-uint8(mainBits))
		}
	}
	offset := mainSize
	for p := range mainSize {
		if d := subDepth[p]; d != 0 {
			if offset+1<<d > len(table) {
				return false // cannot happen for a complete code; see the tables' sizes
			}
			table[p] = flagSub | uint32(mainBits) | uint32(d)<<8 | uint32(offset)<<16
			offset += 1 << d
		}
	}
	for s, l := range lens {
		if l == 0 {
			continue
		}
		e := syms[s] | uint32(l)
		r := int(rev[s])
		if uint(l) <= mainBits {
			for i := r; i < mainSize; i += 1 << l {
				table[i] = e
			}
			continue
		}
		ptr := table[r&(mainSize-1)]
		base, depth := int(ptr>>16), uint(ptr>>8&31)
		low := uint(l) - mainBits
		for i := r >> mainBits; i < 1<<depth; i += 1 << low {
			table[base+i] = e
		}
	}
	return true
}

// reverse reverses the n low bits of c.
func reverse(c uint16, n uint) uint16 {
	var r uint16
	for range n {
		r = r<<1 | c&1
		c >>= 1
	}
	return r
}
