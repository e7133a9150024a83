package tasks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"aicode/services/audit"
	"aicode/services/auth"
	"aicode/services/secrets"
	"aicode/services/store"
)

// Credential kinds: an API key, or a Claude subscription's OAuth token
// (from `claude setup-token`).
const (
	CredAPIKey     = "api_key"
	CredOAuthToken = "oauth_token"
)

// Credential scopes.
const (
	ScopeUser      = "user"
	ScopeWorkspace = "workspace"
)

// CredentialInfo describes a stored credential without revealing it.
type CredentialInfo struct {
	Set       bool
	Kind      string
	Hint      string
	UpdatedAt time.Time
}

// Sources of a run's credentials, most specific first.
const (
	SourceWorkspace  = "workspace"
	SourceUser       = "user"
	SourceDeployment = "deployment"
)

func sealContext(scope, owner string) string { return scope + ":" + owner + ":claude" }

// checkSecret validates a pasted credential.
func checkSecret(kind, value string) (string, error) {
	value = strings.TrimSpace(value)
	if kind != CredAPIKey && kind != CredOAuthToken {
		return "", &ErrInvalid{"kind", "Choose an API key or a subscription token."}
	}
	if len(value) < 20 || len(value) > 1000 {
		return "", &ErrInvalid{"value", "That does not look like a Claude credential (expected 20 to 1000 characters)."}
	}
	for _, r := range value {
		if r < 0x21 || r > 0x7e {
			return "", &ErrInvalid{"value", "A credential is one word of printable characters; check for spaces or line breaks."}
		}
	}
	return value, nil
}

// canManage decides who sets a scope's credential: users their own; a
// workspace's owner (or an admin) the workspace's.
func (s *Service) canManage(ctx context.Context, p auth.Principal, scope, owner string) error {
	switch scope {
	case ScopeUser:
		if owner != p.UserID || !auth.Allowed(p, auth.ActSelf, owner) {
			return auth.ErrForbidden
		}
		if p.Role == store.RoleViewer {
			// Viewers run nothing.
			return auth.ErrForbidden
		}
		return nil
	case ScopeWorkspace:
		_, acc, err := s.d.Workspaces.GetWithAccess(ctx, p, owner)
		if err != nil {
			return err
		}
		if !auth.AllowedOn(p, auth.ActWorkspaceManage, acc) {
			return auth.ErrForbidden
		}
		return nil
	}
	return &ErrInvalid{"scope", "unknown credential scope"}
}

// SetCredential seals and stores a credential for a user or a workspace.
func (s *Service) SetCredential(ctx context.Context, p auth.Principal, scope, owner, kind, value string) error {
	if err := s.canManage(ctx, p, scope, owner); err != nil {
		return err
	}
	value, err := checkSecret(kind, value)
	if err != nil {
		return err
	}
	if s.d.Box == nil {
		return errors.New("credentials cannot be stored: no secret key")
	}
	sealed, err := s.d.Box.Seal([]byte(value), sealContext(scope, owner))
	if err != nil {
		return fmt.Errorf("seal credential: %w", err)
	}
	if err := s.d.Store.SetCredential(ctx, store.Credential{Scope: scope, OwnerID: owner, Kind: kind, Sealed: sealed,
		Hint: secrets.Hint(value), UpdatedBy: p.UserID}); err != nil {
		return err
	}
	s.audit(ctx, p, "credential.set", owner, audit.ResultOK, scope+" "+kind)
	return nil
}

// ClearCredential removes a user's or workspace's credential.
func (s *Service) ClearCredential(ctx context.Context, p auth.Principal, scope, owner string) error {
	if err := s.canManage(ctx, p, scope, owner); err != nil {
		return err
	}
	err := s.d.Store.DeleteCredential(ctx, scope, owner)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err == nil {
		s.audit(ctx, p, "credential.clear", owner, audit.ResultOK, scope)
	}
	return err
}

// Credential describes a scope owner's credential for its settings page.
func (s *Service) Credential(ctx context.Context, p auth.Principal, scope, owner string) (CredentialInfo, error) {
	if err := s.canManage(ctx, p, scope, owner); err != nil {
		return CredentialInfo{}, err
	}
	c, err := s.d.Store.GetCredential(ctx, scope, owner)
	if errors.Is(err, store.ErrNotFound) {
		return CredentialInfo{}, nil
	}
	if err != nil {
		return CredentialInfo{}, err
	}
	return CredentialInfo{Set: true, Kind: c.Kind, Hint: c.Hint, UpdatedAt: c.UpdatedAt}, nil
}

// DeploymentCredential reports whether the deployment has its own
// credential (for pages that say where a run's comes from).
func (s *Service) DeploymentCredential() bool {
	return s.d.Config.APIKey != "" || s.d.Config.OAuthToken != ""
}

// credentials finds the credential a task runs with: the workspace's,
// else its creator's, else the deployment's.
func (s *Service) credentials(ctx context.Context, t store.Task) (kind, value, source string, err error) {
	for _, sc := range []struct{ scope, owner, source string }{
		{ScopeWorkspace, t.WorkspaceID, SourceWorkspace},
		{ScopeUser, t.CreatedBy, SourceUser},
	} {
		c, err := s.d.Store.GetCredential(ctx, sc.scope, sc.owner)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", "", "", err
		}
		if s.d.Box == nil {
			return "", "", "", errors.New("a credential is stored but there is no secret key to open it")
		}
		plain, err := s.d.Box.Open(c.Sealed, sealContext(sc.scope, sc.owner))
		if err != nil {
			// Not the value: a key changed since, or the row was tampered with.
			return "", "", "", fmt.Errorf("open the %s credential (was AICODE_SECRET_KEY changed?): %w", sc.scope, err)
		}
		return c.Kind, string(plain), sc.source, nil
	}
	switch {
	case s.d.Config.OAuthToken != "":
		return CredOAuthToken, s.d.Config.OAuthToken, SourceDeployment, nil
	case s.d.Config.APIKey != "":
		return CredAPIKey, s.d.Config.APIKey, SourceDeployment, nil
	}
	return "", "", "", ErrNoCredentials
}

// cliEnv is the CLI's environment for a task: its credential, and the
// settings that keep a headless run quiet. Values go to the engine's exec
// call only: never to logs, transcripts or pages.
func (s *Service) cliEnv(ctx context.Context, t store.Task) ([]string, error) {
	kind, value, _, err := s.credentials(ctx, t)
	if err != nil {
		return nil, err
	}
	env := []string{
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"DISABLE_AUTOUPDATER=1",
		"CLAUDE_CODE_MAX_RETRIES=" + strconv.Itoa(s.d.Config.APIRetries),
	}
	if kind == CredOAuthToken {
		env = append(env, "CLAUDE_CODE_OAUTH_TOKEN="+value)
	} else {
		env = append(env, "ANTHROPIC_API_KEY="+value)
	}
	if s.d.Config.BaseURL != "" {
		env = append(env, "ANTHROPIC_BASE_URL="+s.d.Config.BaseURL)
	}
	return env, nil
}

// HasCredential reports whether a run in the workspace by the user would
// find credentials (for a warning before queueing).
func (s *Service) HasCredential(ctx context.Context, wsID, userID string) bool {
	_, _, _, err := s.credentials(ctx, store.Task{WorkspaceID: wsID, CreatedBy: userID})
	return err == nil
}
