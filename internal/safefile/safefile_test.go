package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestChecks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the owner checks are for root")
	}
	dir := t.TempDir()
	file := func(name string, uid int) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	victim := file("victim", 0)
	link := filepath.Join(dir, "link")
	os.Symlink(victim, link)
	hard := filepath.Join(dir, "hard")
	os.Link(file("linked", 0), hard)
	nobodys := file("nobodys", 65534)

	userDir := filepath.Join(dir, "user")
	os.Mkdir(userDir, 0o755)
	os.Chown(userDir, 65534, 65534)
	own := filepath.Join(userDir, "own")
	os.WriteFile(own, nil, 0o644)
	os.Chown(own, 65534, 65534)

	for _, tc := range []struct {
		path string
		want error
	}{
		{victim, nil},
		{filepath.Join(dir, "absent"), nil},
		{link, ErrSymlink},
		{hard, ErrForeign},
		{nobodys, ErrForeign},
		{own, nil}, // the directory's owner's own file
	} {
		if err := Check(tc.path); !errors.Is(err, tc.want) {
			t.Errorf("Check %s: %v, want %v", tc.path, err, tc.want)
		}
		f, err := OpenFile(tc.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if !errors.Is(err, tc.want) {
			t.Errorf("OpenFile %s: %v, want %v", tc.path, err, tc.want)
		}
		if err == nil {
			f.Close()
		}
	}
	Trust(65534)
	defer Trust(-1)
	if err := Check(nobodys); err != nil {
		t.Errorf("the trusted user's file: %v", err)
	}
	if err := WriteFile(link, []byte("new\n"), 0o600); !errors.Is(err, ErrSymlink) {
		t.Errorf("WriteFile through a link: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "x\n" {
		t.Errorf("victim now %q", b)
	}
}
