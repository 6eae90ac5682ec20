package platforms

import (
	"strconv"

	"golang.org/x/sys/windows"
)

// hostOSVersion returns the running Windows version as "major.minor.build".
func hostOSVersion() string {
	major, minor, build := windows.RtlGetNtVersionNumbers()
	return strconv.FormatUint(uint64(major), 10) + "." +
		strconv.FormatUint(uint64(minor), 10) + "." +
		strconv.FormatUint(uint64(build), 10)
}

// hostOSFeatures returns ["win32k"] when user32.dll, and with it the win32k
// system calls, is available to containers on this host.
func hostOSFeatures() []string {
	if err := windows.NewLazySystemDLL("user32.dll").Load(); err != nil {
		return nil
	}
	return []string{"win32k"}
}
