package platforms

import (
	"bytes"
	"os"

	"golang.org/x/sys/unix"
)

// hostCPUFlags returns the flags of the first CPU in /proc/cpuinfo. They
// reflect what the kernel and hypervisor let programs use, so they are
// preferred to CPUID.
func hostCPUFlags() (map[string]bool, bool) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return nil, false
	}
	v, ok := cpuInfoField(bytes.NewReader(b), "flags")
	if !ok {
		return nil, false
	}
	return parseFlags(v), true
}

// hostARMVersion returns the Arm architecture version of the CPU from
// /proc/cpuinfo, or from uname when the field is missing (as under user
// mode emulation), or 0.
func hostARMVersion() int {
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if arch, ok := cpuInfoField(bytes.NewReader(b), "CPU architecture"); ok {
			model, _ := cpuInfoField(bytes.NewReader(b), "model name")
			if v := armVersionFromCPUInfo(arch, model); v != 0 {
				return v
			}
		}
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return 0
	}
	return armVersionFromMachine(unix.ByteSliceToString(u.Machine[:]))
}
