package platforms_test

import (
	"fmt"
	"log"
	"sort"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pullkit/pullkit/handlers/platforms"
)

// Only orders the platforms an arm64 host can run, best first, and leaves
// the rest at the end.
func ExampleOnly() {
	m := platforms.Only(platforms.MustParse("linux/arm64/v8"))
	index := []ocispec.Platform{
		platforms.MustParse("linux/amd64"),
		platforms.MustParse("linux/arm/v6"),
		platforms.MustParse("linux/arm/v7"),
		platforms.MustParse("linux/arm64"),
		platforms.MustParse("windows/arm64"),
	}
	sort.SliceStable(index, func(i, j int) bool { return m.Less(index[i], index[j]) })
	for _, p := range index {
		fmt.Println(platforms.Format(p), m.Match(p))
	}
	// Output:
	// linux/arm64 true
	// linux/arm/v7 true
	// linux/arm/v6 true
	// linux/amd64 false
	// windows/arm64 false
}

// An amd64/v3 host runs images built for v3, v2 and the baseline, then 386.
func ExampleOnly_amd64Levels() {
	m := platforms.Only(platforms.MustParse("linux/amd64/v3"))
	for _, s := range []string{"linux/amd64/v4", "linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"} {
		fmt.Println(s, m.Match(platforms.MustParse(s)))
	}
	// Output:
	// linux/amd64/v4 false
	// linux/amd64/v3 true
	// linux/amd64/v2 true
	// linux/amd64 true
	// linux/386 true
}

func ExampleParse() {
	for _, s := range []string{"linux/arm64/v8", "Linux/x86_64", "linux/armhf", "windows(10.0.17763+win32k)/amd64"} {
		p, err := platforms.Parse(s)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%-34s os=%s arch=%s variant=%q version=%q features=%q\n", s, p.OS, p.Architecture, p.Variant, p.OSVersion, p.OSFeatures)
	}
	// Output:
	// linux/arm64/v8                     os=linux arch=arm64 variant="" version="" features=[]
	// Linux/x86_64                       os=linux arch=amd64 variant="" version="" features=[]
	// linux/armhf                        os=linux arch=arm variant="v7" version="" features=[]
	// windows(10.0.17763+win32k)/amd64   os=windows arch=amd64 variant="" version="10.0.17763" features=["win32k"]
}

func ExampleFormatAll() {
	p := ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2700", OSFeatures: []string{"win32k"}}
	fmt.Println(platforms.Format(p))
	fmt.Println(platforms.FormatAll(p))
	// Output:
	// windows/amd64
	// windows(10.0.20348.2700+win32k)/amd64
}

// A Windows Server 2025 host prefers its own build, then builds it can run
// with process isolation, then images without an OS version.
func ExampleOnly_windows() {
	host := platforms.MustParse("windows(10.0.26100)/amd64")
	m := platforms.Only(host)
	index := []ocispec.Platform{
		platforms.MustParse("windows(10.0.17763.6414)/amd64"),
		platforms.MustParse("windows/amd64"),
		platforms.MustParse("windows(10.0.20348.2762)/amd64"),
		platforms.MustParse("windows(10.0.26100.2033)/amd64"),
	}
	sort.SliceStable(index, func(i, j int) bool { return m.Less(index[i], index[j]) })
	for _, p := range index {
		fmt.Println(platforms.FormatAll(p), platforms.OnlyStrict(host).Match(p))
	}
	// Output:
	// windows(10.0.26100.2033)/amd64 true
	// windows(10.0.20348.2762)/amd64 true
	// windows/amd64 true
	// windows(10.0.17763.6414)/amd64 false
}

func ExampleOrdered() {
	m := platforms.Ordered(platforms.MustParse("linux/arm64"), platforms.MustParse("linux/amd64"))
	fmt.Println(m.Less(platforms.MustParse("linux/aarch64"), platforms.MustParse("linux/x86_64")))
	fmt.Println(m.Match(platforms.MustParse("linux/386")))
	// Output:
	// true
	// false
}
