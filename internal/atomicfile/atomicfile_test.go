package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestCreateHonoursUmask(t *testing.T) {
	for _, tc := range []struct {
		umask int
		want  os.FileMode
	}{{0o022, 0o644}, {0o002, 0o664}, {0o077, 0o600}} {
		old := syscall.Umask(tc.umask)
		f, err := Create(filepath.Join(t.TempDir(), "x.simidx"))
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		st, err := f.Stat()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != tc.want {
			t.Errorf("umask %03o: mode %03o, want %03o", tc.umask, got, tc.want)
		}
		if !IsTemp(filepath.Base(f.Name())) {
			t.Errorf("%s is not recognised as a temporary name", f.Name())
		}
	}
}

// deadPID returns the id of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()
	dead := deadPID(t)

	ours, err := Create(filepath.Join(dir, "a.simidx"))
	if err != nil {
		t.Fatal(err)
	}
	ours.Close()
	names := map[string]bool{ // name: should be removed
		fmt.Sprintf(".a.simidx.tmp-%d-1", dead):             true,
		fmt.Sprintf(".0000.features.npy.tmp-%d-7", dead):    true,
		fmt.Sprintf(".a.simidx.tmp-%d-2", live.Process.Pid): false,
		filepath.Base(ours.Name()):                          false,
		"a.simidx":                                          false, // not a temporary file
		".a.simidx.tmp-123456789":                           false, // os.CreateTemp's: no pid to check
		fmt.Sprintf("a.simidx.tmp-%d-1", dead):              false, // not hidden: not ours
	}
	for n := range names {
		if n != filepath.Base(ours.Name()) {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	removed, err := RemoveStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	for n, gone := range names {
		_, err := os.Stat(filepath.Join(dir, n))
		if exists := err == nil; exists == gone {
			t.Errorf("%s: exists=%v, want removed=%v", n, exists, gone)
		}
		if slices.Contains(removed, filepath.Join(dir, n)) != gone {
			t.Errorf("%s: reported removed=%v, want %v", n, !gone, gone)
		}
	}
}

func TestCreateNamesTheTarget(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone", "x.simidx")
	_, err := Create(missing)
	if err == nil || !strings.Contains(err.Error(), "cannot write "+missing+": the folder "+filepath.Dir(missing)+" does not exist") {
		t.Fatalf("Create in a missing folder: %v", err)
	}
}

// TestWriteFile checks that WriteFile replaces the file whole, durable or not, and that a
// write that fails leaves the old file as it was and no temporary file behind.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, durable := range []bool{true, false} {
		content := fmt.Sprintf("durable %v\n", durable)
		if err := WriteFile(path, durable, func(w io.Writer) error { _, err := io.WriteString(w, content); return err }); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != content {
			t.Errorf("after WriteFile(durable %v): %q, %v; want %q", durable, b, err, content)
		}
	}
	failed := errors.New("the writer failed")
	err := WriteFile(path, true, func(w io.Writer) error {
		io.WriteString(w, "half")
		return failed
	})
	if !errors.Is(err, failed) {
		t.Errorf("WriteFile with a failing writer: %v, want its error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "durable false\n" {
		t.Errorf("after a failed WriteFile the file holds %q, want the previous content", b)
	}
	if names, _ := os.ReadDir(dir); len(names) != 1 {
		t.Errorf("after a failed WriteFile the folder holds %v, want the file alone", names)
	}
	if err := WriteFile(filepath.Join(dir, "no", "such", "f"), true, func(io.Writer) error { return nil }); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("WriteFile into a missing folder: %v, want an error saying so", err)
	}
}
