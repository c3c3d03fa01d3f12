package main

import (
	"errors"
	"fmt"

	"github.com/dstwatch/dstwatch/anon"
)

// Library packages say what is wrong in their own terms; these put the
// flags' names back for the command line.

// anonFlagError is anon.Parse's error about --anonymize and --anonymize-key.
func anonFlagError(err error) error {
	var me *anon.ModeError
	switch {
	case errors.Is(err, anon.ErrKeyNotHash):
		return errors.New("--anonymize-key goes with --anonymize hash")
	case errors.Is(err, anon.ErrNoKey):
		return errors.New("--anonymize hash needs --anonymize-key FILE (e.g. head -c 32 /dev/urandom > key)")
	case errors.Is(err, anon.ErrHashArg) && errors.As(err, &me):
		return fmt.Errorf("--anonymize %q: hash takes no argument; the key comes from --anonymize-key", me.Mode)
	case errors.As(err, &me):
		return fmt.Errorf("--anonymize %q: %s", me.Mode, me.Problem)
	}
	return err
}
