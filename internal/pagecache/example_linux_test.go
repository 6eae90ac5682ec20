package pagecache_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pullkit/pullkit/internal/pagecache"
)

func ExampleResident() {
	path := filepath.Join(os.TempDir(), "pagecache-example")
	defer os.Remove(path)
	if err := os.WriteFile(path, []byte("just written"), 0o644); err != nil {
		fmt.Println(err)
		return
	}
	// What was just written is in the cache, whatever the file system.
	n, err := pagecache.Resident(path)
	fmt.Println(n, err)
	// Output: 12 <nil>
}
