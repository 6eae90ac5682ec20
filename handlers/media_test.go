package handlers_test

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/pullkit/pullkit/handlers"
)

func TestMediaTypePredicates(t *testing.T) {
	tests := []struct {
		mt                                        string
		index, manifest, schema1, config, isLayer bool
	}{
		{handlers.MediaTypeImageIndex, true, false, false, false, false},
		{handlers.MediaTypeDockerSchema2ManifestList, true, false, false, false, false},
		{handlers.MediaTypeDockerSchema2ManifestList + "; charset=utf-8", true, false, false, false, false},
		{handlers.MediaTypeImageManifest, false, true, false, false, false},
		{handlers.MediaTypeDockerSchema2Manifest, false, true, false, false, false},
		{handlers.MediaTypeDockerSchema1Manifest, false, false, true, false, false},
		{handlers.MediaTypeDockerSchema1SignedManifest, false, false, true, false, false},
		{handlers.MediaTypeImageConfig, false, false, false, true, false},
		{handlers.MediaTypeDockerSchema2Config, false, false, false, true, false},
		{handlers.MediaTypeLegacyConfig, false, false, false, false, false},
		{handlers.MediaTypeEmptyJSON, false, false, false, false, false},
		{handlers.MediaTypeImageLayer, false, false, false, false, true},
		{handlers.MediaTypeImageLayerGzip, false, false, false, false, true},
		{handlers.MediaTypeImageLayerZstd, false, false, false, false, true},
		{handlers.MediaTypeImageLayerNonDistributableGzip, false, false, false, false, true},
		{handlers.MediaTypeDockerSchema2Layer, false, false, false, false, true},
		{handlers.MediaTypeDockerSchema2LayerForeign, false, false, false, false, true},
		{handlers.MediaTypeDockerSchema2LayerUncompressed, false, false, false, false, true},
		{handlers.MediaTypeDockerSchema2LayerZstd, false, false, false, false, true},
		{"application/vnd.oci.image.layer.v1.tar+gzip+encrypted", false, false, false, false, true},
		{"application/vnd.cncf.helm.chart.content.v1.tar+gzip", false, false, false, false, false},
		{"", false, false, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.mt, func(t *testing.T) {
			if got := handlers.IsIndex(tt.mt); got != tt.index {
				t.Errorf("IsIndex() = %v, want %v", got, tt.index)
			}
			if got := handlers.IsManifest(tt.mt); got != tt.manifest {
				t.Errorf("IsManifest() = %v, want %v", got, tt.manifest)
			}
			if got := handlers.IsSchema1(tt.mt); got != tt.schema1 {
				t.Errorf("IsSchema1() = %v, want %v", got, tt.schema1)
			}
			if got := handlers.IsConfig(tt.mt); got != tt.config {
				t.Errorf("IsConfig() = %v, want %v", got, tt.config)
			}
			if got := handlers.IsLayer(tt.mt); got != tt.isLayer {
				t.Errorf("IsLayer() = %v, want %v", got, tt.isLayer)
			}
		})
	}
}

func TestLayerCompression(t *testing.T) {
	tests := []struct {
		mt      string
		want    handlers.Compression
		wantErr error
	}{
		{handlers.MediaTypeImageLayer, handlers.CompressionNone, nil},
		{handlers.MediaTypeImageLayerGzip, handlers.CompressionGzip, nil},
		{handlers.MediaTypeImageLayerZstd, handlers.CompressionZstd, nil},
		{handlers.MediaTypeImageLayerNonDistributable, handlers.CompressionNone, nil},
		{handlers.MediaTypeImageLayerNonDistributableGzip, handlers.CompressionGzip, nil},
		{handlers.MediaTypeImageLayerNonDistributableZstd, handlers.CompressionZstd, nil},
		{handlers.MediaTypeDockerSchema2Layer, handlers.CompressionGzip, nil},
		{handlers.MediaTypeDockerSchema2LayerForeign, handlers.CompressionGzip, nil},
		{handlers.MediaTypeDockerSchema2LayerUncompressed, handlers.CompressionNone, nil},
		{handlers.MediaTypeDockerSchema2LayerZstd, handlers.CompressionZstd, nil},
		{"application/vnd.oci.image.layer.v1.tar+gzip+encrypted", 0, errdefs.ErrNotImplemented},
		{"application/vnd.oci.image.layer.v1.tar+bzip2", 0, errdefs.ErrNotImplemented},
		{handlers.MediaTypeImageConfig, 0, errdefs.ErrInvalidArgument},
		{"", 0, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.mt, func(t *testing.T) {
			got, err := handlers.LayerCompression(tt.mt)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("LayerCompression() error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("LayerCompression() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCompressionString(t *testing.T) {
	for c, want := range map[handlers.Compression]string{
		handlers.CompressionNone: "none",
		handlers.CompressionGzip: "gzip",
		handlers.CompressionZstd: "zstd",
		handlers.Compression(9):  "Compression(9)",
	} {
		if got := c.String(); got != want {
			t.Errorf("Compression(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}
