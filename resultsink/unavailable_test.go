package resultsink_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/resultsink/resultsinktest"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// tcpProxy forwards connections to a real database until cut.
type tcpProxy struct {
	l      net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{l: l}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			p.mu.Lock()
			if err != nil || p.closed {
				p.mu.Unlock()
				c.Close()
				if up != nil {
					up.Close()
				}
				continue
			}
			p.conns = append(p.conns, c, up)
			p.wg.Add(2)
			p.mu.Unlock()
			go func() { defer p.wg.Done(); _, _ = io.Copy(up, c); up.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

// cut closes the listener and every connection, and waits for the
// forwarding goroutines: the database behind it is unreachable.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	p.closed = true
	p.l.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// proxiedDSN is dsn (of dialect d, on the default local server) with its
// address replaced by addr.
func proxiedDSN(t *testing.T, d sqlexec.Dialect, dsn, addr string) string {
	t.Helper()
	if d == sqlexec.MySQL {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Addr = addr
		return cfg.FormatDSN()
	}
	out := strings.Replace(dsn, "@127.0.0.1:5432/", "@"+addr+"/", 1)
	if out == dsn {
		t.Fatal("the DSN is not of the local PostgreSQL")
	}
	return out
}

// TestReadWithBackendDown: a read of a backend whose database cannot be
// reached (its pooled connections lost, new ones refused) is
// sqljobber.ErrUnavailable, naming the backend and not its address.
func TestReadWithBackendDown(t *testing.T) {
	targets := map[sqlexec.Dialect]string{sqlexec.Postgres: "127.0.0.1:5432", sqlexec.MySQL: "127.0.0.1:3306"}
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			dsn := sqlexectest.DSN(t, d)
			p := startTCPProxy(t, targets[d])
			b, err := resultsink.Open(ctx, resultsink.Config{
				DBConfig: sqlexec.DBConfig{Name: "far", Type: d, DSN: proxiedDSN(t, d, dsn, p.l.Addr().String()), MaxActive: 2},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			r, err := resultsink.NewReader([]*resultsink.Backend{b}, resultsink.ReaderConfig{})
			if err != nil {
				t.Fatal(err)
			}
			table := resultsink.Table{Backend: "far", Name: "results_down", Version: resultsinktest.NewVersion()}
			if _, _, err := b.Write(ctx, table.Name, table.Version, &seqRows{n: 3}, nextFence()); err != nil {
				t.Fatal(err)
			}
			page, err := r.Read(ctx, table, resultsink.Query{})
			if err != nil {
				t.Fatal(err)
			}
			if err := page.Close(); err != nil {
				t.Fatal(err)
			}

			p.cut()
			for i := range 2 { // the pooled connection, then a new one
				_, err := r.Read(ctx, table, resultsink.Query{})
				if !errors.Is(err, sqljobber.ErrUnavailable) || !strings.Contains(err.Error(), `results backend "far"`) {
					t.Fatalf("read %d with the database down: %v, want ErrUnavailable naming the backend", i+1, err)
				}
				if strings.Contains(err.Error(), "127.0.0.1") {
					t.Fatalf("the error shows the database's address: %v", err)
				}
			}
		})
	}
}
