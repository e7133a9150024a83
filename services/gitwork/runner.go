package gitwork

import (
	"context"
	"io"

	"aicode/services/engine"
)

// Dir is the project directory inside a workspace container: the only
// repository gitwork ever touches.
const Dir = "/workspace"

// Runner runs one command (argv, no shell) to completion in a workspace
// container, as the workspace user in Dir. stdout and stderr are each kept
// up to maxOut bytes. err reports a failure to run the command at all; a
// command that ran and failed reports it through exitCode.
type Runner interface {
	Run(ctx context.Context, args []string, stdin io.Reader, maxOut int) (stdout, stderr []byte, exitCode int, err error)
}

// gitEnv keeps the container's and the user's setup from changing what git
// does or prints:
//   - English messages (LC_ALL beats any locale the image sets), which the
//     error mapping reads;
//   - no system or global config: identity, signing, aliases, includes and
//     credential helpers come from the calls, never from ~/.gitconfig;
//     HOME then only has to exist, and /tmp does for any user id;
//   - no prompts (there is no terminal to answer them);
//   - no repository discovery above Dir: if / were a repository, "not a
//     repository" must not turn into "the whole filesystem is one".
var gitEnv = []string{
	"HOME=/tmp",
	"LANG=C.UTF-8",
	"LC_ALL=C.UTF-8",
	"GIT_TERMINAL_PROMPT=0",
	"GIT_CONFIG_NOSYSTEM=1",
	"GIT_CONFIG_GLOBAL=/dev/null",
	"GIT_CEILING_DIRECTORIES=/",
	"GIT_PAGER=cat",
}

// EngineRunner runs commands in containerID through the engine, as user
// (e.g. "1000:1000"), in Dir.
func EngineRunner(e *engine.Engine, containerID, user string) Runner {
	return &engineRunner{e: e, containerID: containerID, user: user}
}

type engineRunner struct {
	e           *engine.Engine
	containerID string
	user        string
}

func (r *engineRunner) Run(ctx context.Context, args []string, stdin io.Reader, maxOut int) ([]byte, []byte, int, error) {
	res, err := r.e.Capture(ctx, r.containerID, engine.ExecSpec{
		Cmd:     args,
		User:    r.user,
		WorkDir: Dir,
		Env:     gitEnv,
	}, stdin, maxOut)
	return res.Stdout, res.Stderr, res.ExitCode, err
}
