package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sql-jobber/sql-jobber/cluster/clustertest"
	"github.com/sql-jobber/sql-jobber/internal/testwait"
)

func TestMain(m *testing.M) {
	os.Exit(clustertest.CheckLeaks(m.Run()))
}

// echo is a test grain: it answers a string with its identity and the
// string, and passivates after idle.
type echo struct {
	id   string
	idle time.Duration
}

func (e *echo) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		ctx.SetReceiveTimeout(e.idle)
	case *cluster.ClusterInit:
		e.id = msg.Identity.Identity
	case *actor.ReceiveTimeout:
		ctx.Stop(ctx.Self())
	case *wrapperspb.StringValue:
		ctx.Respond(wrapperspb.String(e.id + ":" + msg.Value))
	}
}

func startNode(t *testing.T, idle time.Duration) *Node {
	t.Helper()
	n, err := NewNode(Config{Kinds: []*cluster.Kind{cluster.NewKind("echo",
		actor.PropsFromProducer(func() actor.Actor { return &echo{idle: idle} }))}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n
}

func TestGrainsActivatePassivateAndComeBack(t *testing.T) {
	const idle = time.Second
	n := startNode(t, idle)
	ctx := context.Background()
	begin := time.Now()
	for i := range 50 {
		id := fmt.Sprintf("g%d", i)
		res, err := n.Request(ctx, "echo", id, wrapperspb.String("hi"))
		if err != nil {
			t.Fatal(err)
		}
		if got := res.(*wrapperspb.StringValue).Value; got != id+":hi" {
			t.Fatalf("grain %s answered %q", id, got)
		}
	}
	// No grain can idle out before idle has passed since the first
	// request: counted within that, all 50 are active. (A machine too
	// busy to make 50 requests within it proves nothing here.)
	if got := n.ActiveGrains(); got != 50 && time.Since(begin) < idle {
		t.Fatalf("%d grains active, want 50", got)
	}
	// Idle grains go, and their memory with them.
	testwait.For(t, 20*time.Second, "the idle grains to passivate", func() (bool, string) {
		active := n.ActiveGrains()
		return active == 0, fmt.Sprintf("%d grains active", active)
	})
	res, err := n.system.Root.RequestFuture(n.lookup.placement, countKeys{}, 5*time.Second).Result()
	if err != nil || res.(int) != 0 {
		t.Fatalf("%v grains still known by PID after all passivated (%v), want 0", res, err)
	}
	// Nor are they found locally: a request would go to a stopped grain.
	local := 0
	n.lookup.local.Range(func(any, any) bool { local++; return true })
	if local != 0 {
		t.Fatalf("%d passivated grains still found locally, want 0", local)
	}
	// A passivated grain comes back on the next request.
	res, err = n.Request(ctx, "echo", "g7", wrapperspb.String("again"))
	if err != nil || res.(*wrapperspb.StringValue).Value != "g7:again" {
		t.Fatalf("re-activated grain: %v, %v", res, err)
	}
}

func TestRequestToAnUnknownKindGivesUp(t *testing.T) {
	n := startNode(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := n.Request(ctx, "nope", "x", wrapperspb.String("hi"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
}

// TestRequestWithoutADeadlineGivesUpAfterTheRequestTimeout: the node's
// request timeout bounds a request whose context has none, retries and all
// (an HTTP request has none): it does not retry for as long as its caller
// waits.
func TestRequestWithoutADeadlineGivesUpAfterTheRequestTimeout(t *testing.T) {
	n, err := NewNode(Config{RequestTimeout: 300 * time.Millisecond, Kinds: []*cluster.Kind{cluster.NewKind("echo",
		actor.PropsFromProducer(func() actor.Actor { return &echo{idle: time.Minute} }))}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	// No member hosts kind "nope", so every try finds no owner.
	done := make(chan error, 1)
	go func() {
		_, err := n.Request(context.Background(), "nope", "x", wrapperspb.String("hi"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want ErrUnavailable for a deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a request without a deadline of its own, and a timeout of 300 ms, was still retrying after 10 s")
	}
}

func TestStartFailsWithAnErrorWhenThePortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	n, err := NewNode(Config{Port: port, Kinds: []*cluster.Kind{cluster.NewKind("echo",
		actor.PropsFromProducer(func() actor.Actor { return &echo{} }))}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if err := n.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err %v", err)
	}
}

func TestStopIsIdempotentAndSafeBeforeStart(t *testing.T) {
	n, err := NewNode(Config{Kinds: []*cluster.Kind{cluster.NewKind("echo",
		actor.PropsFromProducer(func() actor.Actor { return &echo{} }))}})
	if err != nil {
		t.Fatal(err)
	}
	n.Stop()
	n.Stop()
	if err := n.Start(context.Background()); err == nil {
		t.Fatal("a stopped node started")
	}
	if _, err := NewNode(Config{}); err == nil {
		t.Fatal("a node without grain kinds was made")
	}
}
