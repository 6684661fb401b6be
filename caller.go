package sqljobber

import "context"

// Caller is the client a request comes from, as the API authenticated it:
// the name of its token, and whether that token may see and do everything
// (admin). A request with no Caller in its context (the API runs without
// tokens, or the engine acts on its own) is unrestricted.
type Caller struct {
	Name  string
	Admin bool
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller ctx carries, if any.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Owner is who owns what a request submits: the caller's name, or "" for an
// unrestricted request.
func Owner(ctx context.Context) string {
	c, _ := CallerFrom(ctx)
	return c.Name
}

// Sees reports whether a request made with ctx may see, wait on, read,
// cancel and purge a job or group owned by owner: an unrestricted request
// or an admin sees everything, another caller only what it submitted.
func Sees(ctx context.Context, owner string) bool {
	c, ok := CallerFrom(ctx)
	return !ok || c.Admin || c.Name == owner
}
