package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
)

// Who may do what through the socket. The socket's mode decides who may
// connect: root, and the members of --socket-group when it is given. Every
// one of them may read. Acting (every method but GET and HEAD: ending an
// incident runs its undo commands, as root when the daemon is root) needs
// the peer process to be root or the daemon's own user, checked with
// SO_PEERCRED on the connection, so that a group sold as read access for a
// monitoring agent cannot run anything.

type peerKey struct{}

// peer is the connected process as the kernel saw it at connect time.
type peer struct {
	pid      int32
	uid, gid uint32
}

// peerContext records the connection's peer credentials; a connection
// whose peer is unknown (not a unix socket) gets none and may only read.
func peerContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *syscall.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, peer{pid: cred.Pid, uid: cred.Uid, gid: cred.Gid})
}

// mayAct reports whether the request's peer may change the daemon's state.
func mayAct(r *http.Request) (peer, bool) {
	p, ok := r.Context().Value(peerKey{}).(peer)
	if !ok {
		return peer{}, false
	}
	return p, p.uid == 0 || int(p.uid) == os.Geteuid()
}

// actor wraps a handler that acts: other peers get 403 and what to do.
func (s *Server) actor(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := mayAct(r)
		if !ok {
			who := "an unknown peer"
			if p != (peer{}) {
				who = fmt.Sprintf("uid %d", p.uid)
			}
			s.log.Warn("api: refused an action", "path", r.URL.Path, "peer_uid", p.uid, "peer_pid", p.pid)
			writeError(w, http.StatusForbidden, "permission denied: %s %s acts on the daemon (it may run undo commands); only root or the daemon's own user may, members of the socket group may only read (this is %s)", r.Method, r.URL.Path, who)
			return
		}
		next(w, r)
	}
}
