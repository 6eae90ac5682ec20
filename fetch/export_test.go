package fetch

// ChunkBuffers returns how many chunk buffers r's split downloads hold now,
// and the most they held at once.
func ChunkBuffers(r *Repository) (out, peak int) { return r.bufs.usage() }
