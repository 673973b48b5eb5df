package broker

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// quote shows at most 64 bytes of a client's input in an error.
func quote(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q… (%d bytes)", s[:64], len(s))
	}
	return fmt.Sprintf("%q", s)
}

func invalid(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "vmpulse broker: %s: %s", field, fmt.Sprintf(format, args...))
}

func unimplemented(format string, args ...any) error {
	return status.Errorf(codes.Unimplemented, "vmpulse broker: "+format, args...)
}

// checkName checks that name is projects/{project}/{collection}/{id} with an id
// the service accepts: 3 to 255 characters, starting with a letter, made of
// letters, digits and - _ . ~ + %, not starting with "goog".
func checkName(field, name, collection string) error {
	// Cut, not Split: a valid name costs no allocation (this runs on every
	// Publish, Acknowledge and ModifyAckDeadline).
	rest, ok := strings.CutPrefix(name, "projects/")
	project, rest, ok2 := strings.Cut(rest, "/")
	coll, id, ok3 := strings.Cut(rest, "/")
	if !ok || !ok2 || !ok3 || project == "" || coll != collection || strings.Contains(id, "/") {
		return invalid(field, "%s is not a name of the form projects/{project}/%s/{id}", quote(name), collection)
	}
	switch {
	case len(id) < 3 || len(id) > 255:
		return invalid(field, "%s: the id must have 3 to 255 characters", quote(name))
	case !isLetter(id[0]):
		return invalid(field, "%s: the id must start with a letter", quote(name))
	case strings.HasPrefix(id, "goog"):
		return invalid(field, "%s: the id must not start with \"goog\"", quote(name))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !isLetter(c) && (c < '0' || c > '9') && !strings.ContainsRune("-_.~+%", rune(c)) {
			return invalid(field, "%s: the id may contain only letters, digits and - _ . ~ + %%", quote(name))
		}
	}
	return nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func checkProject(field, name string) error {
	parts := strings.Split(name, "/")
	if len(parts) != 2 || parts[0] != "projects" || parts[1] == "" {
		return invalid(field, "%s is not a name of the form projects/{project}", quote(name))
	}
	return nil
}

// Bounds of the service.
const (
	minTopicRetention = 10 * time.Minute
	maxTopicRetention = 31 * 24 * time.Hour
	minSubRetention   = 10 * time.Minute
	maxSubRetention   = 31 * 24 * time.Hour
	defSubRetention   = 7 * 24 * time.Hour
	minAckDeadline    = 10 * time.Second
	maxAckDeadline    = 600 * time.Second
	defAckDeadline    = 10 * time.Second
	minExpirationTTL  = 24 * time.Hour
	defExpirationTTL  = 31 * 24 * time.Hour
	maxPublishBytes   = 10 << 20
	maxAttributes     = 100
	maxAttrKeyBytes   = 256
	maxAttrValueBytes = 1024
	maxPageSize       = 1000
	defPageSize       = 100
)

func checkRetention(field string, d *durationpb.Duration, lo, hi time.Duration) (time.Duration, error) {
	if err := d.CheckValid(); err != nil {
		return 0, invalid(field, "%v", err)
	}
	v := d.AsDuration()
	if v < lo || v > hi {
		return 0, invalid(field, "%v is outside the allowed range %v to %v", v, lo, hi)
	}
	return v, nil
}

func checkAckDeadline(field string, secs int32) (time.Duration, error) {
	d := time.Duration(secs) * time.Second
	if d < minAckDeadline || d > maxAckDeadline {
		return 0, invalid(field, "%d s is outside the allowed range 10 to 600 s", secs)
	}
	return d, nil
}

// page selects the page of sorted names after token (the last name of the
// previous page).
func page(names []string, size int32, token, field string) ([]string, string, error) {
	if size < 0 {
		return nil, "", invalid(field, "page_size %d is negative", size)
	}
	n := int(size)
	if n == 0 {
		n = defPageSize
	}
	if n > maxPageSize {
		n = maxPageSize
	}
	sort.Strings(names)
	from := 0
	if token != "" {
		from = sort.Search(len(names), func(i int) bool { return names[i] > token })
	}
	to := from + n
	if to >= len(names) {
		return names[from:], "", nil
	}
	return names[from:to], names[to-1], nil
}

// find returns what m holds under name, or NotFound for that kind of
// resource; the caller holds the lock that guards m (Server.mu).
func find[V any](m map[string]*V, kind, name string) (*V, error) {
	v := m[name]
	if v == nil {
		return nil, notFound(kind, name)
	}
	return v, nil
}

// inProject returns the names in m (full resource names) that belong to
// project.
func inProject[V any](m map[string]V, project string) []string {
	var names []string
	for n := range m {
		if strings.HasPrefix(n, project+"/") {
			names = append(names, n)
		}
	}
	return names
}
