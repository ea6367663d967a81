package pgtest

import "syscall"

// sysProcAttr runs the child as cred (nil: as this process) and kills it if the test process
// dies, so no server outlives its tests.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
