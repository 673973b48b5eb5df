package driver

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// NoToken says how to give the ingest token; senders print it when they have none.
const NoToken = "no ingest token: the ingress answers 401 without one. Pass it as INGEST_TOKEN=<token>, " +
	"or in a file with -token-file FILE (INGEST_TOKEN_FILE; `make up` writes .vmpulse/ingest-token), " +
	"or use -no-token for an ingress that runs without auth"

// ErrNoToken is returned by LoadToken when neither source gives a token.
var ErrNoToken = errors.New(NoToken)

// LoadToken returns the ingest token: token itself (INGEST_TOKEN) when set, else the
// first non-empty line of file (-token-file, INGEST_TOKEN_FILE). The token is never
// part of an error message.
func LoadToken(token, file string) (string, error) {
	if t := strings.TrimSpace(token); t != "" {
		return t, nil
	}
	if file == "" {
		return "", ErrNoToken
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading the token file: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(line); t != "" {
			return t, nil
		}
	}
	return "", fmt.Errorf("token file %s is empty", file)
}
