// Command mockoidc is the OpenID Connect provider of the tests: the oauth2-proxy project's
// mockoidc library (an authorization-code flow that signs every login in without a page) on a
// fixed address, with a fixed client, and two additions for tests: POST /test/next-user queues
// the user the next login signs in as (JSON: sub, email, preferred_username, groups; with an
// empty queue a login is mockoidc's default user, sub 1234567890, jane.doe), and
// POST /test/refuse-next-login makes the next login end on a refusal page instead, as a
// person who declines to sign in.
//
// It prints one JSON line with the issuer URL once it listens.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/oauth2-proxy/mockoidc"
)

type queuedUser struct {
	Subject           string   `json:"sub"`
	Email             string   `json:"email"`
	PreferredUsername string   `json:"preferred_username"`
	Groups            []string `json:"groups"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	clientID := flag.String("client-id", "ephemerator", "the OAuth client id oauth2-proxy uses")
	clientSecret := flag.String("client-secret", "ephemerator-test-secret", "its client secret")
	flag.Parse()

	provider, err := mockoidc.NewServer(nil)
	if err != nil {
		log.Fatalf("mockoidc: %v", err)
	}
	provider.ClientID = *clientID
	provider.ClientSecret = *clientSecret

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("mockoidc: listen %s: %v", *listen, err)
	}
	var refuseNext atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc(mockoidc.AuthorizationEndpoint, func(w http.ResponseWriter, r *http.Request) {
		if refuseNext.CompareAndSwap(true, false) {
			http.Error(w, "sign-in refused", http.StatusForbidden)
			return
		}
		provider.Authorize(w, r)
	})
	mux.HandleFunc("/test/refuse-next-login", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST to refuse the next login", http.StatusMethodNotAllowed)
			return
		}
		refuseNext.Store(true)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc(mockoidc.TokenEndpoint, provider.Token)
	mux.HandleFunc(mockoidc.UserinfoEndpoint, provider.Userinfo)
	mux.HandleFunc(mockoidc.JWKSEndpoint, provider.JWKS)
	mux.HandleFunc(mockoidc.DiscoveryEndpoint, provider.Discovery)
	mux.HandleFunc("/test/next-user", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST a user", http.StatusMethodNotAllowed)
			return
		}
		var user queuedUser
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&user); err != nil || user.Subject == "" {
			http.Error(w, "a JSON user with at least sub", http.StatusBadRequest)
			return
		}
		provider.UserQueue.Push(&mockoidc.MockUser{
			Subject:           user.Subject,
			Email:             user.Email,
			EmailVerified:     true,
			PreferredUsername: user.PreferredUsername,
			Groups:            user.Groups,
		})
		w.WriteHeader(http.StatusNoContent)
	})
	// The library reads its own address (for the issuer) from Server.
	provider.Server = &http.Server{Addr: ln.Addr().String(), Handler: mux}

	ready, _ := json.Marshal(map[string]string{"issuer": provider.Issuer()})
	fmt.Fprintln(os.Stdout, string(ready))
	if err := provider.Server.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("mockoidc: %v", err)
	}
}
