package resolve

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/fetch"
	"github.com/pullkit/pullkit/reference"
)

// Fetcher parses ref and returns a Fetcher for the content of its
// repository, served by the hosts with CapabilityPull, in order. The
// value returned is also a fetch.ResumeFetcher, so fetch.Handler resumes
// interrupted ingests on it, and has the method
// Stat(ctx, desc) (int64, error) of fetch.Repository (a handlers/schema1
// Stater), which asks the hosts in the same order for a blob's size.
//
// Each host gets a fetch.Repository (with its retries, Range resume and
// chunked downloads). A request a host fails (a 404, 401, 403, 429, 5xx,
// a transport or TLS error) goes to the next host; so does the rest of a
// download that breaks on a host after that host's own retries, from the
// byte where it broke. Authentication errors from a mirror do not stop
// the fetch, as in containerd: the mirror may not know the credentials the
// registry takes. When every host failed, the error is an [*Error] that
// names each host's answer and is classified by the last one, normally
// the registry itself: errdefs.IsNotFound(err) when it does not have the
// blob, even if a mirror was down. ctx is not used: each Fetch has its
// own.
func (r *Registry) Fetcher(_ context.Context, ref string) (fetch.Fetcher, error) {
	parsed, err := reference.Parse(ref)
	if err != nil {
		return nil, err
	}
	hosts, err := r.hostsFor(parsed.Registry, CapabilityPull)
	if err != nil {
		return nil, fmt.Errorf("fetcher for %s: %w", parsed.Name(), err)
	}
	f := &mirrorFetcher{registry: parsed.Registry, logger: r.cfg.logger}
	for i, h := range hosts {
		prefix, repo := h.endpoint(parsed.Repository)
		opts := []fetch.Option{fetch.WithClient(r.doer(h)), fetch.WithPathPrefix(prefix)}
		if h.plainHTTP() {
			opts = append(opts, fetch.WithPlainHTTP())
		}
		if len(h.Header) > 0 {
			opts = append(opts, fetch.WithHeader(h.Header))
		}
		if r.cfg.observer != nil {
			opts = append(opts, fetch.WithObserver(r.cfg.observer))
		}
		if r.cfg.logger != nil {
			opts = append(opts, fetch.WithLogger(r.cfg.logger))
		}
		opts = append(opts, r.cfg.fetchOpts...)
		if i < len(hosts)-1 {
			opts = append(opts, fetch.WithRetries(0))
		}
		f.hosts = append(f.hosts, hostRepo{name: h.String(), repo: fetch.New(h.Host, repo, opts...)})
	}
	return f, nil
}

// mirrorFetcher fetches from hosts in order, failing over.
type mirrorFetcher struct {
	registry string
	hosts    []hostRepo
	logger   *slog.Logger
}

type hostRepo struct {
	name string
	repo *fetch.Repository
}

var _ fetch.ResumeFetcher = (*mirrorFetcher)(nil)

// Fetch is FetchFrom at offset 0.
func (f *mirrorFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return f.FetchFrom(ctx, desc, 0)
}

// FetchFrom opens desc from offset on the first host that serves it.
func (f *mirrorFetcher) FetchFrom(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("fetch %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 || offset < 0 || offset > desc.Size {
		return nil, fmt.Errorf("fetch %s: offset %d outside [0, %d]: %w", desc.Digest, offset, desc.Size, errdefs.ErrInvalidArgument)
	}
	rd := &failoverReader{f: f, ctx: ctx, desc: desc, idx: -1, pos: offset}
	if err := rd.advance(); err != nil {
		return nil, err
	}
	return rd, nil
}

// Stat returns the size of the blob desc.Digest from the first host that
// tells it (see fetch.Repository.Stat; desc.Size is not used). A host that
// fails, for any reason, passes the question to the next; when every host
// failed, the error is an [*Error] that names each host's answer and is
// classified by the last one's.
func (f *mirrorFetcher) Stat(ctx context.Context, desc ocispec.Descriptor) (int64, error) {
	if err := desc.Digest.Validate(); err != nil {
		return 0, fmt.Errorf("stat %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	op := "stat " + desc.Digest.String()
	var fails []HostError
	for i, h := range f.hosts {
		size, err := h.repo.Stat(ctx, desc)
		if err == nil {
			return size, nil
		}
		if ctx.Err() != nil {
			return 0, err
		}
		he := HostError{Host: h.name, Err: err, trim: op + ": "}
		fails = append(fails, he)
		if f.logger != nil && i+1 < len(f.hosts) {
			f.logger.LogAttrs(ctx, slog.LevelInfo, "stat: host failed, trying the next",
				slog.String("digest", desc.Digest.String()), slog.String("error", he.Error()))
		}
	}
	return 0, &Error{Op: op, Registry: f.registry, Hosts: fails}
}

// failoverReader reads a blob from one host and, when that host gives up,
// goes on from the next host at the same byte.
type failoverReader struct {
	f     *mirrorFetcher
	ctx   context.Context
	desc  ocispec.Descriptor
	idx   int           // the host rc reads from
	rc    io.ReadCloser // nil after a failure that ended the read, or Close
	pos   int64         // the next byte Read returns
	fails []HostError
	err   error // sticky
}

// advance opens the blob at pos on the next host that answers.
func (rd *failoverReader) advance() error {
	for rd.idx+1 < len(rd.f.hosts) {
		rd.idx++
		h := rd.f.hosts[rd.idx]
		rc, err := h.repo.FetchFrom(rd.ctx, rd.desc, rd.pos)
		if err == nil {
			rd.rc = rc
			return nil
		}
		if rd.ctx.Err() != nil {
			return err
		}
		rd.fail(h.name, err)
	}
	return &Error{Op: "fetch " + rd.desc.Digest.String(), Registry: rd.f.registry, Hosts: rd.fails}
}

// fail records a host's failure and logs it when another host is left.
func (rd *failoverReader) fail(host string, err error) {
	he := HostError{Host: host, Err: err, trim: "fetch " + rd.desc.Digest.String() + ": "}
	rd.fails = append(rd.fails, he)
	if rd.f.logger != nil && rd.idx+1 < len(rd.f.hosts) {
		rd.f.logger.LogAttrs(rd.ctx, slog.LevelInfo, "fetch: host failed, trying the next",
			slog.String("digest", rd.desc.Digest.String()), slog.Int64("offset", rd.pos), slog.String("error", he.Error()))
	}
}

// Read reads from the current host, failing over when it gives up.
func (rd *failoverReader) Read(p []byte) (int, error) {
	for {
		if rd.err != nil {
			return 0, rd.err
		}
		if rd.rc == nil {
			return 0, fmt.Errorf("fetch %s: read after Close: %w", rd.desc.Digest, errdefs.ErrFailedPrecondition)
		}
		n, err := rd.rc.Read(p)
		rd.pos += int64(n)
		if err == nil || err == io.EOF || rd.ctx.Err() != nil {
			return n, err
		}
		if rd.idx+1 >= len(rd.f.hosts) && len(rd.fails) == 0 {
			return n, err // one host: its error says it all
		}
		rd.fail(rd.f.hosts[rd.idx].name, err)
		rd.rc.Close()
		rd.rc = nil
		if aerr := rd.advance(); aerr != nil {
			rd.err = aerr
			return n, aerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// Seek moves the read position, as the current host's reader does (see
// fetch.Repository.Fetch).
func (rd *failoverReader) Seek(offset int64, whence int) (int64, error) {
	if rd.err != nil {
		return 0, rd.err
	}
	s, ok := rd.rc.(io.Seeker)
	if !ok {
		return 0, fmt.Errorf("fetch %s: seek: reader is closed or cannot seek: %w", rd.desc.Digest, errdefs.ErrFailedPrecondition)
	}
	pos, err := s.Seek(offset, whence)
	if err == nil {
		rd.pos = pos
	}
	return pos, err
}

// Close closes the current host's reader.
func (rd *failoverReader) Close() error {
	if rd.rc == nil {
		return nil
	}
	err := rd.rc.Close()
	rd.rc = nil
	return err
}
