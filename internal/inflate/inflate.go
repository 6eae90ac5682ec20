package inflate

import (
	"compress/flate"
	"encoding/binary"
	"io"
)

const (
	windowSize = 32 << 10 // how far back DEFLATE refers
	maxMatch   = 258

	// outSize is the size of the output buffer: the window of history
	// and the bytes decoded since, handed out before the window slides.
	outSize = windowSize + 1<<20
	// outMargin is the room a symbol needs at the end of the output: the
	// longest match and 16 bytes its word-wise copy may write past it.
	outMargin = maxMatch + 16

	inSize = 128 << 10
	// inPad is how many zero bytes follow the input's end, so that the
	// decoding loop refills its bit buffer with whole words to the end.
	inPad = 64
	// inMargin is the input the decoding loop wants at the top of a
	// symbol: two refills of 8 bytes, with room to spare.
	inMargin = 32
	// inKeep is how many bytes before the read position stay in the buffer
	// when it is refilled: those a bit buffer of 64 bits may give back.
	inKeep = 8
)

// Block states.
const (
	stateHeader  = iota // at the start of a block
	stateStored         // inside a stored block
	stateHuffman        // inside a Huffman-coded block
	stateDone           // after the final block
)

// decoder decodes one DEFLATE stream, from a reader into its output buffer.
// It reads its input in blocks of its own and gives back, when the stream
// ends, the bytes it read past it.
type decoder struct {
	r       io.Reader
	in      *[inSize + inPad]byte // in[ip:end] is unread input; in[end:] is padding
	ip, end int
	eof     bool  // r has no more input; in[end:end+inPad] is zero
	rerr    error // r's error, other than io.EOF
	total   int64 // input bytes dropped from the front of in, for error offsets

	bitbuf   uint64 // the next bits, from the bottom; bits above bitsleft are the next input bytes or zero
	bitsleft uint

	out       *[outSize]byte
	op        int // out[:op] is decoded
	histStart int // out[histStart:op] is this stream's history

	state      int
	final      bool
	storedLeft int
	symStart   int // where the output of the last symbol began, near the input's end
	lit        *[litTableSize]uint32
	dist       *[distTableSize]uint32
	dynLit     [litTableSize]uint32
	dynDist    [distTableSize]uint32
	pre        [preTableSize]uint32
	lens       [numLitLen + numDist]uint8
}

// init readies d to read from r. d must not be copied after: lit may
// point into it.
func (d *decoder) init(r io.Reader) {
	d.r = r
	d.in = new([inSize + inPad]byte)
	d.out = new([outSize]byte)
}

// corrupt reports corrupt input at the current position.
func (d *decoder) corrupt() error {
	return flate.CorruptInputError(d.total + int64(d.ip))
}

// fill reads more input, keeping inKeep bytes before ip. At the end of r,
// it pads the input with zeros and sets eof; it returns r's other errors.
func (d *decoder) fill() error {
	if d.eof {
		return nil
	}
	if d.rerr != nil {
		return d.rerr
	}
	if keep := max(d.ip-inKeep, 0); keep > 0 {
		n := copy(d.in[:], d.in[keep:d.end])
		d.total += int64(keep)
		d.ip -= keep
		d.end = n
	}
	// Read at least twice inMargin, so that the decoding loop can run.
	for empty := 0; d.end-d.ip < 2*inMargin; {
		n, err := d.r.Read(d.in[d.end:inSize])
		d.end += n
		if err == io.EOF {
			d.eof = true
			clear(d.in[d.end : d.end+inPad])
			return nil
		}
		if err != nil {
			d.rerr = err
			return err
		}
		if n > 0 {
			empty = 0
		} else if empty++; empty > 100 {
			d.rerr = io.ErrNoProgress
			return d.rerr
		}
	}
	return nil
}

// need makes at least n bits (at most 56) available in the bit buffer,
// reading input as needed. Past the input's end it takes padding, which
// the caller finds with overrun.
func (d *decoder) need(n uint) error {
	if d.bitsleft >= n {
		return nil
	}
	if d.end-d.ip < 8 && !d.eof {
		if err := d.fill(); err != nil {
			return err
		}
	}
	if d.end+inPad-d.ip < 8 {
		return io.ErrUnexpectedEOF
	}
	d.refill()
	return nil
}

// refill fills the bit buffer to at least 56 bits from in[ip:], which
// holds at least 8 bytes, counting padding.
func (d *decoder) refill() {
	d.bitbuf |= binary.LittleEndian.Uint64(d.in[d.ip:]) << d.bitsleft
	d.ip += int(63-d.bitsleft) >> 3
	d.bitsleft |= 56
}

// overrun reports whether the bits consumed so far reach past the input's end.
func (d *decoder) overrun() bool {
	return d.eof && d.ip > d.end && uint(d.ip-d.end)*8 > d.bitsleft
}

// bits takes n bits, which the bit buffer holds.
func (d *decoder) bits(n uint) uint32 {
	v := uint32(d.bitbuf & (1<<n - 1))
	d.bitbuf >>= n
	d.bitsleft -= n
	return v
}

// giveBack drops the bits up to the next byte boundary and returns the
// whole bytes left in the bit buffer to the input. It reports false if
// the stream took bits past the input's end.
func (d *decoder) giveBack() bool {
	if d.overrun() {
		return false
	}
	d.bitbuf >>= d.bitsleft & 7
	d.bitsleft &^= 7
	d.ip -= int(d.bitsleft >> 3)
	d.bitbuf, d.bitsleft = 0, 0
	return true
}

// reset starts a new stream, keeping the input read so far.
func (d *decoder) reset() {
	d.state, d.final, d.storedLeft = stateHeader, false, 0
	d.histStart = d.op
}

// slide moves the last window of output to the front of the buffer, so
// that there is room to decode more; the output before it must have been
// handed out.
func (d *decoder) slide() {
	if d.op <= windowSize {
		return
	}
	shift := d.op - windowSize
	copy(d.out[:], d.out[shift:d.op])
	d.op = windowSize
	d.histStart = max(d.histStart-shift, 0)
}

// room reports whether the output has room for another symbol.
func (d *decoder) room() bool { return d.op <= outSize-outMargin }

// decode decodes until the output has no room for another symbol or the
// stream ends.
func (d *decoder) decode() error {
	for d.room() {
		var err error
		switch d.state {
		case stateHeader:
			err = d.header()
		case stateStored:
			err = d.stored()
		case stateHuffman:
			err = d.huffman()
		case stateDone:
			return nil
		}
		if err != nil {
			if _, ok := err.(flate.CorruptInputError); ok && d.eof && d.ip > d.end {
				// The bits that made no sense were, some of them,
				// padding: the stream was cut short.
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// header reads a block's header and, for a dynamic block, its codes.
func (d *decoder) header() error {
	if err := d.need(3); err != nil {
		return d.inputErr(err)
	}
	d.final = d.bits(1) == 1
	typ := d.bits(2)
	if d.overrun() {
		return io.ErrUnexpectedEOF
	}
	switch typ {
	case 0:
		if !d.giveBack() {
			return io.ErrUnexpectedEOF
		}
		var b [4]byte
		for i := range b {
			c, err := d.readByte()
			if err != nil {
				return d.inputErr(err)
			}
			b[i] = c
		}
		n, nc := binary.LittleEndian.Uint16(b[:2]), binary.LittleEndian.Uint16(b[2:])
		if n != ^nc {
			return d.corrupt()
		}
		d.storedLeft, d.state = int(n), stateStored
	case 1:
		d.lit, d.dist, d.state = fixedLit, fixedDist, stateHuffman
	case 2:
		if err := d.dynamic(); err != nil {
			return err
		}
		d.lit, d.dist, d.state = &d.dynLit, &d.dynDist, stateHuffman
	default:
		return d.corrupt()
	}
	return nil
}

// inputErr turns the lack of input into io.ErrUnexpectedEOF.
func (d *decoder) inputErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readByte reads a byte of input, outside the bit buffer, which is empty.
func (d *decoder) readByte() (byte, error) {
	if d.ip >= d.end {
		if d.eof {
			return 0, io.EOF
		}
		if err := d.fill(); err != nil {
			return 0, err
		}
		if d.ip >= d.end {
			return 0, io.EOF
		}
	}
	c := d.in[d.ip]
	d.ip++
	return c, nil
}

// preOrder is the order in which a dynamic block gives the lengths of
// the code-length code.
var preOrder = [numPre]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamic reads the codes of a dynamic block and builds their tables.
func (d *decoder) dynamic() error {
	if err := d.need(14); err != nil {
		return d.inputErr(err)
	}
	nlit := int(d.bits(5)) + 257
	ndist := int(d.bits(5)) + 1
	npre := int(d.bits(4)) + 4
	if nlit > 286 || ndist > 30 {
		return d.corrupt()
	}
	var plens [numPre]uint8
	for i := range npre {
		if err := d.need(3); err != nil {
			return d.inputErr(err)
		}
		plens[preOrder[i]] = uint8(d.bits(3))
	}
	if !buildTable(d.pre[:], preBits, plens[:], preSymbols[:]) {
		return d.corrupt()
	}
	lens := d.lens[:nlit+ndist]
	for i := 0; i < len(lens); {
		if err := d.need(preBits + 7); err != nil {
			return d.inputErr(err)
		}
		e := d.pre[d.bitbuf&(1<<preBits-1)]
		if e&flagInvalid != 0 {
			return d.corrupt()
		}
		d.bits(uint(e & lenMask))
		sym := e >> 16
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return d.corrupt()
			}
			rep, val = 3+int(d.bits(2)), lens[i-1]
		case 17:
			rep = 3 + int(d.bits(3))
		default:
			rep = 11 + int(d.bits(7))
		}
		if i+rep > len(lens) {
			return d.corrupt()
		}
		for range rep {
			lens[i] = val
			i++
		}
	}
	if d.overrun() {
		return io.ErrUnexpectedEOF
	}
	if lens[256] == 0 {
		return d.corrupt() // every block ends with its end-of-block code
	}
	if !buildTable(d.dynLit[:], litBits, lens[:nlit], litSymbols[:]) ||
		!buildTable(d.dynDist[:], distBits, lens[nlit:], distSymbols[:]) {
		return d.corrupt()
	}
	return nil
}

// stored copies a stored block's bytes from the input to the output.
func (d *decoder) stored() error {
	for d.storedLeft > 0 && d.room() {
		if d.ip >= d.end {
			if d.eof {
				return io.ErrUnexpectedEOF
			}
			if err := d.fill(); err != nil {
				return err
			}
			continue
		}
		n := copy(d.out[d.op:outSize-outMargin+maxMatch], d.in[d.ip:min(d.end, d.ip+d.storedLeft)])
		d.ip += n
		d.op += n
		d.storedLeft -= n
	}
	if d.storedLeft == 0 {
		d.endBlock()
	}
	return nil
}

// endBlock moves on from a block that ended.
func (d *decoder) endBlock() {
	if d.final {
		d.state = stateDone
	} else {
		d.state = stateHeader
	}
}

// huffman decodes a Huffman-coded block's symbols until the block ends or
// the output has no more room. Its loop keeps the state in local
// variables, few enough to stay in registers, and needs no check for
// input within a symbol: it runs while inMargin bytes, counting padding,
// are left. Once the bit buffer holds padding, each symbol is checked
// for bits taken past the input's end.
func (d *decoder) huffman() error {
	bitbuf, bitsleft := d.bitbuf, d.bitsleft
	in, ip := d.in, d.ip
	out, op := d.out, d.op
	lit := d.lit
	ipLimit := d.end - inMargin
	if d.eof {
		ipLimit = d.end - 8 // from there, a refill may take padding
	}
	// e is the main entry for the bits at the bottom of bitbuf, once
	// preloaded: a match loads the entry after it before copying, so that
	// the lookup and the copy overlap.
	var e uint32
	preloaded := false
	for {
		if op > outSize-outMargin {
			d.bitbuf, d.bitsleft, d.ip, d.op = bitbuf, bitsleft, ip, op
			if d.overrun() {
				d.op = d.symStart
				return io.ErrUnexpectedEOF
			}
			return nil
		}
		if ip > ipLimit {
			d.bitbuf, d.bitsleft, d.ip, d.op = bitbuf, bitsleft, ip, op
			if !d.eof {
				if err := d.fill(); err != nil {
					return err
				}
				ip = d.ip
				ipLimit = d.end - inMargin
				if d.eof {
					ipLimit = d.end - 8
				}
				continue
			}
			// Near the end: the symbol before may have taken padding.
			if d.overrun() {
				d.op = d.symStart
				return io.ErrUnexpectedEOF
			}
			if ip > d.end+inPad-inMargin {
				return io.ErrUnexpectedEOF
			}
			d.symStart = op
		}

		if !preloaded {
			bitbuf |= binary.LittleEndian.Uint64(in[ip:]) << (bitsleft & 63)
			ip += int(63-bitsleft) >> 3
			bitsleft |= 56
			e = lit[bitbuf&(1<<litBits-1)]
		}
		preloaded = false
		if e&flagSub != 0 {
			e = lit[int(e>>16)+int(bitbuf>>litBits)&(1<<(e>>8&31)-1)]
		}
		if e&flagLiteral != 0 {
			// Up to three literals per refill: 56 bits hold three
			// codes of 15. The next ones must be in the main table.
			for k := 0; ; k++ {
				n := uint(e & lenMask)
				bitbuf >>= n
				bitsleft -= n
				out[op] = byte(e >> 16)
				op++
				if k == 2 {
					break
				}
				e = lit[bitbuf&(1<<litBits-1)]
				if e&(flagLiteral|flagSub) != flagLiteral {
					break
				}
			}
			continue
		}
		if e&(flagEOB|flagInvalid) != 0 {
			if e&flagInvalid != 0 {
				d.bitbuf, d.bitsleft, d.ip, d.op = bitbuf, bitsleft, ip, op
				return d.corrupt()
			}
			n := uint(e & lenMask)
			bitbuf >>= n
			bitsleft -= n
			d.bitbuf, d.bitsleft, d.ip, d.op = bitbuf, bitsleft, ip, op
			if d.overrun() {
				return io.ErrUnexpectedEOF
			}
			d.endBlock()
			return nil
		}

		// A length, then a distance: at most 15+5 and 15+13 bits, which
		// the 56 bits hold.
		n := uint(e & lenMask)
		extra := uint(e >> 8 & 31)
		length := int(e>>16) + int(bitbuf>>n&(1<<extra-1))
		bitbuf >>= n + extra
		bitsleft -= n + extra

		dist := d.dist
		e = dist[bitbuf&(1<<distBits-1)]
		if e&flagSub != 0 {
			e = dist[int(e>>16)+int(bitbuf>>distBits)&(1<<(e>>8&31)-1)]
		}
		if e&flagInvalid != 0 {
			d.bitbuf, d.bitsleft, d.ip, d.op = bitbuf, bitsleft, ip, op
			return d.corrupt()
		}
		n = uint(e & lenMask)
		extra = uint(e >> 8 & 31)
		distance := int(e>>16) + int(bitbuf>>n&(1<<extra-1))
		bitbuf >>= n + extra
		bitsleft -= n + extra
		if distance > op-d.histStart {
			d.bitbuf, d.bitsleft, d.ip, d.op = bitbuf, bitsleft, ip, op
			return d.corrupt()
		}

		// A second refill for the next symbol: inMargin leaves room for
		// it, and the input checks at the top still hold for what it
		// takes (see overrun).
		bitbuf |= binary.LittleEndian.Uint64(in[ip:]) << (bitsleft & 63)
		ip += int(63-bitsleft) >> 3
		bitsleft |= 56
		e = lit[bitbuf&(1<<litBits-1)]
		preloaded = true

		src := op - distance
		switch {
		case distance >= 8:
			// Word by word, overlapping or not: each word is read
			// whole before it is written, at least 8 bytes behind.
			// Most matches are short: the first two words go
			// without a loop.
			binary.LittleEndian.PutUint64(out[op:], binary.LittleEndian.Uint64(out[src:]))
			binary.LittleEndian.PutUint64(out[op+8:], binary.LittleEndian.Uint64(out[src+8:]))
			for i := 16; i < length; i += 8 {
				binary.LittleEndian.PutUint64(out[op+i:], binary.LittleEndian.Uint64(out[src+i:]))
			}
		case distance == 1:
			b := out[src]
			for i := range out[op : op+length] {
				out[op+i] = b
			}
		default:
			for i := range length {
				out[op+i] = out[src+i]
			}
		}
		op += length
	}
}
