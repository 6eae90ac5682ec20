package inflate

import (
	"compress/gzip"
	"encoding/binary"
	"hash/crc32"
	"io"
)

// gzip header flags (RFC 1952, 2.3.1).
const (
	flagHdrCRC  = 1 << 1
	flagExtra   = 1 << 2
	flagName    = 1 << 3
	flagComment = 1 << 4

	// maxString is the longest name or comment a header may carry, its
	// NUL included: compress/gzip's limit.
	maxString = 512
)

// Reader decompresses a gzip stream of one or more members, as
// compress/gzip's Reader does in its default multistream mode, and
// reports the same errors: gzip.ErrHeader for a bad header,
// gzip.ErrChecksum for a member whose CRC-32 or size does not match,
// io.ErrUnexpectedEOF for a stream cut short and flate.CorruptInputError
// for bad DEFLATE data. Its buffers take about 1.2 MiB.
type Reader struct {
	d    decoder
	rp   int // out[rp:op] is decoded and not yet handed out
	crc  uint32
	size uint32
	err  error
}

// NewReader reads the header of r's first member and returns a Reader of
// its decompressed bytes. An empty r gives io.EOF, as with compress/gzip.
func NewReader(r io.Reader) (*Reader, error) {
	z := new(Reader)
	z.d.init(r)
	if err := z.readHeader(); err != nil {
		return nil, err
	}
	return z, nil
}

// Read reads decompressed bytes into p. It returns io.EOF after the last
// member, once its checksum and size are verified.
func (z *Reader) Read(p []byte) (int, error) {
	d := &z.d
	for {
		if z.rp < d.op {
			n := copy(p, d.out[z.rp:d.op])
			z.rp += n
			return n, nil
		}
		if z.err != nil {
			return 0, z.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		if d.state == stateDone {
			z.err = z.nextMember()
			continue
		}
		if !d.room() {
			d.slide()
			z.rp = d.op
		}
		from := d.op
		err := d.decode()
		z.crc = crc32.Update(z.crc, crc32.IEEETable, d.out[from:d.op])
		z.size += uint32(d.op - from)
		if err != nil {
			z.err = err
		}
	}
}

// Close releases nothing and returns nil; it is there for io.ReadCloser.
func (z *Reader) Close() error { return nil }

// nextMember checks the trailer of the member that ended and reads the
// header of the next one; it returns io.EOF if there is none.
func (z *Reader) nextMember() error {
	d := &z.d
	if !d.giveBack() {
		return io.ErrUnexpectedEOF
	}
	var t [8]byte
	if err := z.readFull(t[:]); err != nil {
		return d.inputErr(err)
	}
	if binary.LittleEndian.Uint32(t[:4]) != z.crc || binary.LittleEndian.Uint32(t[4:]) != z.size {
		return gzip.ErrChecksum
	}
	return z.readHeader()
}

// readFull reads len(p) bytes of input outside the DEFLATE stream.
func (z *Reader) readFull(p []byte) error {
	for i := range p {
		c, err := z.d.readByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		p[i] = c
	}
	return nil
}

// readHeader reads a member's header (RFC 1952, 2.3) and starts its
// DEFLATE stream.
func (z *Reader) readHeader() error {
	var h [10]byte
	if err := z.readFull(h[:]); err != nil {
		return err
	}
	if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 {
		return gzip.ErrHeader
	}
	flg := h[3]
	crc := crc32.ChecksumIEEE(h[:])
	if flg&flagExtra != 0 {
		var x [2]byte
		if err := z.readFull(x[:]); err != nil {
			return noEOF(err)
		}
		crc = crc32.Update(crc, crc32.IEEETable, x[:])
		for range binary.LittleEndian.Uint16(x[:]) {
			c, err := z.d.readByte()
			if err != nil {
				return noEOF(err)
			}
			crc = crc32.Update(crc, crc32.IEEETable, []byte{c})
		}
	}
	for _, f := range []byte{flagName, flagComment} {
		if flg&f == 0 {
			continue
		}
		for i := 0; ; i++ {
			if i >= maxString {
				return gzip.ErrHeader
			}
			c, err := z.d.readByte()
			if err != nil {
				return noEOF(err)
			}
			crc = crc32.Update(crc, crc32.IEEETable, []byte{c})
			if c == 0 {
				break
			}
		}
	}
	if flg&flagHdrCRC != 0 {
		var x [2]byte
		if err := z.readFull(x[:]); err != nil {
			return noEOF(err)
		}
		if binary.LittleEndian.Uint16(x[:]) != uint16(crc) {
			return gzip.ErrHeader
		}
	}
	z.crc, z.size = 0, 0
	z.d.reset()
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
