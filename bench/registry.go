package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	// The storage driver the registry is configured with.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// registry is the CNCF distribution registry, served in this process on
// 127.0.0.1 over plain HTTP, storing blobs in a directory.
type registry struct {
	srv  *http.Server
	ln   net.Listener
	Host string // 127.0.0.1:PORT
}

func startRegistry(root string) (*registry, error) {
	logrus.SetOutput(io.Discard)
	logrus.SetLevel(logrus.ErrorLevel)
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem":  configuration.Parameters{"rootdirectory": root},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
			"cache":       configuration.Parameters{"blobdescriptor": "inmemory"},
		},
	}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Secret = "pullkit-bench-secret"
	app := handlers.NewApp(context.Background(), cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &registry{ln: ln, Host: ln.Addr().String()}
	r.srv = &http.Server{Handler: app, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *registry) Close() { _ = r.srv.Close() }

// pusher pushes images through the registry's HTTP API, as docker push
// does: blobs by monolithic upload, then manifests, then the index.
type pusher struct {
	base   string // http://host
	client *http.Client
}

func (p *pusher) push(ctx context.Context, im *image) error {
	for _, b := range im.Push {
		if isManifestType(b.Desc.MediaType) {
			continue
		}
		if err := p.blob(ctx, im.Repo, b); err != nil {
			return err
		}
	}
	for _, b := range im.Push {
		if !isManifestType(b.Desc.MediaType) {
			continue
		}
		ref := b.Desc.Digest.String()
		if b.Desc.Digest == im.Root.Digest {
			ref = im.Tag
		}
		if err := p.manifest(ctx, im.Repo, ref, b); err != nil {
			return err
		}
	}
	return nil
}

func isManifestType(mt string) bool {
	switch mt {
	case "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
		"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json":
		return true
	}
	return false
}

func (p *pusher) blob(ctx context.Context, repo string, b blob) error {
	u := fmt.Sprintf("%s/v2/%s/blobs/uploads/", p.base, repo)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload of %s: %s", b.Desc.Digest, resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	base, _ := url.Parse(u)
	loc = base.ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", b.Desc.Digest.String())
	loc.RawQuery = q.Encode()
	f, err := os.Open(b.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), f)
	req.ContentLength = b.Desc.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = p.client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload %s: %s: %s", b.Desc.Digest, resp.Status, body)
	}
	return nil
}

func (p *pusher) manifest(ctx context.Context, repo, ref string, b blob) error {
	data, err := os.ReadFile(b.Path)
	if err != nil {
		return err
	}
	u := fmt.Sprintf("%s/v2/%s/manifests/%s", p.base, repo, ref)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(data))
	req.Header.Set("Content-Type", b.Desc.MediaType)
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("put manifest %s:%s: %s: %s", repo, ref, resp.Status, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != b.Desc.Digest.String() {
		return errors.New("registry computed digest " + got + " for manifest " + b.Desc.Digest.String())
	}
	return nil
}
