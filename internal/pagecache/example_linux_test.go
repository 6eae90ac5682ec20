package pagecache_test

import (
	"bytes"
	"fmt"
	"log"
	"os"

	"github.com/pullkit/pullkit/internal/pagecache"
)

func ExampleWaitAndDrop() {
	f, err := os.CreateTemp("", "pagecache-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(bytes.Repeat([]byte("x"), 1<<20)); err != nil {
		log.Fatal(err)
	}
	n, _ := pagecache.Resident(f.Name())
	fmt.Println("in the cache once written:", n)

	// Start the writeback while other work goes on, then drop the pages.
	if err := pagecache.StartWriteback(f.Fd(), 0, 0); err != nil {
		log.Fatal(err)
	}
	pagecache.WaitAndDrop(f.Fd(), 0, 0)
	n, _ = pagecache.Resident(f.Name())
	always, _ := pagecache.AlwaysCached(os.TempDir()) // tmpfs keeps them
	fmt.Println("left the cache:", n == 0 || always)
	// Output:
	// in the cache once written: 1048576
	// left the cache: true
}
