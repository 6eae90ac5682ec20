//go:build race

package importer

// raceEnabled reports whether the race detector is on: it multiplies
// memory use, so memory measurements skip under it.
const raceEnabled = true
