// Package chtest runs real ClickHouse servers for tests: Debian's
// clickhouse-server as a plain process on loopback, with its own config,
// data directory and free ports in the test's temporary directory. Every
// server knows a cluster "fleet" with one shard per server started
// together, so a Distributed table over them works as a fleet's would.
package chtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/dstwatch/dstwatch/internal/netnstest"
)

// User and Password are a second account every server has, for tests of
// password files; the default user has no password.
const (
	User     = "dstwatch"
	Password = "fleet-secret"
)

// Server is one running (or stopped) clickhouse-server.
type Server struct {
	Dir  string
	Port int // native protocol, on 127.0.0.1
	http int
	ipc  int
	ns   string // network namespace it runs in; "" the test's own
	cmd  *exec.Cmd
	done chan struct{}
	exit error // once done is closed
	t    testing.TB
}

// Start runs one server and stops it when the test ends.
func Start(t testing.TB) *Server { return cluster(t, 1, "")[0] }

// StartIn runs one server on the loopback of network namespace ns; only
// processes in ns reach it (Open and Exec enter ns themselves).
func StartIn(t testing.TB, ns string) *Server { return cluster(t, 1, ns)[0] }

// Cluster runs n servers that each know all n as the shards of cluster
// "fleet", and stops them when the test ends.
func Cluster(t testing.TB, n int) []*Server { return cluster(t, n, "") }

func cluster(t testing.TB, n int, ns string) []*Server {
	t.Helper()
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		netnstest.Unable(t, "needs ClickHouse: apt-get install clickhouse-server (scripts/test installs it when run as root)")
	}
	// A port can still be taken between freePort and the server's bind
	// (by another test binary's servers): then the whole cluster starts
	// again on other ports, since every server's config names them all.
	for attempt := 1; ; attempt++ {
		servers := make([]*Server, n)
		for i := range servers {
			s := &Server{Dir: t.TempDir(), t: t, ns: ns}
			s.Port, s.http, s.ipc = freePort(t), freePort(t), freePort(t)
			servers[i] = s
		}
		var shards strings.Builder
		for _, s := range servers {
			fmt.Fprintf(&shards, "<shard><replica><host>127.0.0.1</host><port>%d</port></replica></shard>", s.Port)
		}
		// Started together and then waited for, since a start is mostly
		// ClickHouse loading itself.
		for _, s := range servers {
			s.writeConfig(shards.String())
			s.start()
			t.Cleanup(s.discard)
		}
		var err error
		for _, s := range servers {
			if err = s.ready(); err != nil {
				break
			}
		}
		if err == nil {
			return servers
		}
		for _, s := range servers {
			s.discard()
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
	}
}

// given are the ports freePort handed out in this process.
var given struct {
	sync.Mutex
	ports map[int]bool
}

// freePort is a TCP port free on 127.0.0.1 now, below the kernel's
// ephemeral range (from 32768 by default) and not handed out before by
// this process: a port of that range, free when asked, is taken as the
// local end of some connection before the server binds it often enough to
// fail a suite that opens thousands.
func freePort(t testing.TB) int {
	given.Lock()
	defer given.Unlock()
	if given.ports == nil {
		given.ports = map[int]bool{}
	}
	for range 10000 {
		p := 20000 + rand.IntN(12000)
		if given.ports[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		given.ports[p] = true
		return p
	}
	t.Fatal("chtest: no free port from 20000 to 32000")
	return 0
}

func (s *Server) writeConfig(shards string) {
	d := s.Dir
	cfg := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%[1]s/server.log</log><errorlog>%[1]s/server.err.log</errorlog><console>0</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]d</tcp_port>
  <http_port>%[3]d</http_port>
  <interserver_http_port>%[4]d</interserver_http_port>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <remote_servers><fleet>%[5]s</fleet></remote_servers>
</yandex>
`, d, s.Port, s.http, s.ipc, shards)
	users := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <%[1]s><password>%[2]s</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></%[1]s>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`, User, Password)
	for name, body := range map[string]string{"config.xml": cfg, "users.xml": users} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
}

// Addr is the server's native protocol address.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// DSN is the clickhouse:// URL of database db on the server.
func (s *Server) DSN(db string) string { return fmt.Sprintf("clickhouse://%s/%s", s.Addr(), db) }

// Restart starts the server (again, on the same data and ports) and waits
// until it answers a query.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
	s.waitReady()
}

// start starts the server process.
func (s *Server) start() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatal("chtest: server already running")
	}
	cmd := exec.Command("clickhouse-server", "--config-file="+filepath.Join(s.Dir, "config.xml"))
	if s.ns != "" {
		cmd = netnstest.Command(s.ns, "clickhouse-server", "--config-file="+filepath.Join(s.Dir, "config.xml"))
	}
	out, err := os.Create(filepath.Join(s.Dir, "stdout.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	// No Pdeathsig: it fires when the starting OS thread exits, and the
	// namespace helpers end locked threads. Cleanup stops the server.
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	out.Close()
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { s.exit = cmd.Wait(); close(s.done) }()
}

// errPortTaken is ready's error when the server could not bind its ports.
var errPortTaken = errors.New("a port was taken")

// waitReady waits until the server start started answers a query.
func (s *Server) waitReady() {
	s.t.Helper()
	if err := s.ready(); err != nil {
		s.t.Fatal(err)
	}
}

// ready is waitReady's wait; it wraps errPortTaken when the server exited
// because another process holds one of its ports.
func (s *Server) ready() error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.ping()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "server.err.log"))
			out, _ := os.ReadFile(filepath.Join(s.Dir, "stdout.log"))
			s.cmd = nil
			err := fmt.Errorf("clickhouse-server exited at start (%v): %s%s", s.exit, tail(out), tail(log))
			if strings.Contains(string(log)+string(out), "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return err
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("clickhouse-server on %s not ready after 60 s: %v", s.Addr(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func (s *Server) ping() error {
	if s.ns != "" {
		return netnstest.Do(s.ns, s.ping1)
	}
	return s.ping1()
}

func (s *Server) ping1() error {
	c, err := s.Open("default")
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx)
}

// Open connects to database db on the server as the default user (from
// the test's own namespace: for a server in another, call it inside
// netnstest.Do).
func (s *Server) Open(db string) (clickhouse.Conn, error) {
	return clickhouse.Open(&clickhouse.Options{
		Addr:        []string{s.Addr()},
		Auth:        clickhouse.Auth{Database: db, Username: "default"},
		DialTimeout: 2 * time.Second,
		ReadTimeout: 30 * time.Second,
	})
}

// Exec runs statements on the server, failing the test on an error.
func (s *Server) Exec(sql ...string) {
	s.t.Helper()
	run := func() error {
		c, err := s.Open("default")
		if err != nil {
			return err
		}
		defer c.Close()
		for _, q := range sql {
			if err := c.Exec(context.Background(), q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	}
	var err error
	if s.ns != "" {
		err = netnstest.Do(s.ns, run)
	} else {
		err = run()
	}
	if err != nil {
		s.t.Fatal(err)
	}
}

// discard ends the server at the test's end. Its data goes with the
// test's directory, so it is killed rather than shut down: ClickHouse's
// own shutdown takes seconds, paid by every test that starts one.
func (s *Server) discard() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Stop ends the server (SIGTERM, then SIGKILL after 20 s) and waits.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}
