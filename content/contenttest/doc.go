// Package contenttest checks implementations of content.Store and
// content.Images against the contracts documented in package content, the
// way testing/fstest.TestFS checks an fs.FS.
//
// A store's own tests call [Run] with a function that returns a new, empty
// store for each subtest, and [RunImages] likewise for its name records:
//
//	func TestStore(t *testing.T) {
//		contenttest.Run(t, func(t *testing.T) content.Store {
//			s, err := mystore.Open(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
//	func TestImages(t *testing.T) {
//		contenttest.RunImages(t, func(t *testing.T) content.Images {
//			return mystore.New(t.TempDir()).Images()
//		})
//	}
//
// The subtests are grouped by topic and named after the contract they check
// (for example "Run/Verify/size_too_small_commits_nothing"), so -run selects
// a group or a single contract. They cover writing and committing with and
// without a known size and digest, verification failures that commit
// nothing, resuming abandoned ingests (also through content.Copy with a
// seeker, a reader-at and a plain reader), the ref lock and
// content.OpenWriter, labels and Update fieldpaths, Walk filters, Delete,
// Status, ListStatuses and Abort, and, for name records, Create, Get, List,
// Update and Delete with their times.
//
// No check depends on timing: where a goroutine must wait for a held ref,
// the suite observes the Unavailable error the store returns, then releases
// the ref. Blobs are small except one of a few MiB that is streamed. The
// suite does not run subtests in parallel, but it does write to one store
// from several goroutines, so run it with -race.
package contenttest
