package local

import (
	"fmt"
	"net"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/sirupsen/logrus"
)

// embeddedMySQL is an in-memory MySQL-compatible server (dolthub/go-mysql-server):
// the stack's fallback database when MariaDB is not installed, or with
// -database embedded. It speaks the MySQL wire protocol on loopback, so the
// routes use the same driver and SQL as in production. Its data lives in memory
// and is gone when the stack stops. Only the local stack imports it: production
// binaries do not carry it.
type embeddedMySQL struct {
	srv  *server.Server
	addr string
}

// startMySQL serves an empty database named dbName on ln (user root, no password).
func startMySQL(ln net.Listener, dbName string) (*embeddedMySQL, error) {
	logrus.SetLevel(logrus.ErrorLevel) // go-mysql-server logs every connection at info
	db := memory.NewDatabase(dbName)
	db.BaseDatabase.EnablePrimaryKeyIndexes()
	pro := memory.NewDBProvider(db)
	engine := sqle.NewDefault(pro)
	cfg := server.Config{Protocol: "tcp", Listener: ln, Address: ln.Addr().String()}
	srv, err := server.NewServer(cfg, engine, sql.NewContext, memory.NewSessionBuilder(pro), nil)
	if err != nil {
		return nil, fmt.Errorf("embedded MySQL: %w", err)
	}
	go func() { _ = srv.Start() }()
	return &embeddedMySQL{srv: srv, addr: ln.Addr().String()}, nil
}

// DSN is the data source name of the embedded database.
func (e *embeddedMySQL) DSN(dbName string) string {
	return "root@tcp(" + e.addr + ")/" + dbName
}

func (e *embeddedMySQL) Close() error { return e.srv.Close() }
