package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hearth-iot/hearth/broker/auth"
	"golang.org/x/term"
)

// defaultUsersFile sits in serve's default data directory, so that `hearth
// user add` run where `hearth serve` runs edits the file the broker reads.
var defaultUsersFile = filepath.Join("hearth-data", usersFile)

const userUsage = `Usage:
  hearth user add [--users FILE] [--role ROLE]... [--replace] NAME
  hearth user remove [--users FILE] NAME
  hearth user list [--users FILE]

add reads the password from stdin, one line, or prompts for it twice
without echo when stdin is a terminal. With --replace, an existing user
gets the new password, and the roles if --role is given; its data stays.
The users file defaults to ./hearth-data/users.yaml.
`

// maxPasswordLen bounds a password read from stdin.
const maxPasswordLen = 4096

// roleList collects repeated --role flags.
type roleList []string

func (r *roleList) String() string { return strings.Join(*r, ",") }

func (r *roleList) Set(v string) error {
	*r = append(*r, v)
	return nil
}

// userCommand runs `hearth user`. Exit codes: 0 ok, 1 failure, 2 usage
// error; errors go to stderr.
func userCommand(args []string) int {
	return runUser(args, os.Stdin, os.Stdout, os.Stderr)
}

func runUser(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, userUsage)
		return 2
	}
	cmd := args[0]
	fs := flag.NewFlagSet("hearth user "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, userUsage)
		fmt.Fprintf(stderr, "\nFlags of hearth user %s:\n", cmd)
		fs.PrintDefaults()
	}
	usersPath := fs.String("users", defaultUsersFile, "users `file`")
	var roles roleList
	var replace *bool
	nargs := 1
	switch cmd {
	case "add":
		fs.Var(&roles, "role", "give the user `ROLE` (repeat for several)")
		replace = fs.Bool("replace", false, "replace the password (and roles, if --role is given) of an existing user")
	case "remove":
	case "list":
		nargs = 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, userUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "hearth user: unknown command %q\n\n%s", cmd, userUsage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package has printed the error and usage
	}
	if fs.NArg() != nargs {
		if fs.NArg() < nargs {
			fmt.Fprintf(stderr, "hearth user %s: NAME is missing\n\n%s", cmd, userUsage)
		} else {
			fmt.Fprintf(stderr, "hearth user %s: unexpected argument %q (flags go before NAME)\n\n%s", cmd, fs.Arg(nargs), userUsage)
		}
		return 2
	}
	name := fs.Arg(0)
	path := *usersPath

	switch cmd {
	case "list":
		users, err := auth.ListUsers(path)
		if err != nil {
			return fail(stderr, "list", err)
		}
		for _, u := range users {
			fmt.Fprintf(stdout, "%s\t%s\n", u.Name, strings.Join(u.Roles, ","))
		}
		return 0
	case "remove":
		if err := auth.RemoveUser(path, name); err != nil {
			return fail(stderr, "remove", err)
		}
		fmt.Fprintf(stdout, "removed user %s from %s\n", name, path)
		return 0
	}

	// Check what can be checked before asking for a password.
	if err := errors.Join(auth.CheckName(name), auth.CheckRoles(roles)); err != nil {
		fmt.Fprintf(stderr, "hearth user add: %v\n", err)
		return 2
	}
	password, err := readPassword(stdin, stderr, name)
	if err != nil {
		return fail(stderr, "add", err)
	}
	// Without --role, --replace keeps the roles: nil says so to SetUser.
	var rs []string
	if len(roles) > 0 {
		rs = roles
	}
	verb := "added"
	if *replace {
		err = auth.SetUser(path, name, password, rs)
		verb = "set"
	} else {
		err = auth.AddUser(path, name, password, rs)
	}
	if err != nil {
		if errors.Is(err, auth.ErrUserExists) {
			err = fmt.Errorf("%w (--replace changes the password)", err)
		}
		return fail(stderr, "add", err)
	}
	fmt.Fprintf(stdout, "%s user %s in %s\n", verb, name, path)
	return 0
}

// fail reports err and returns the failure exit code.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "hearth user %s: %v\n", cmd, err)
	return 1
}

// readPassword prompts twice without echo when stdin is a terminal, and
// otherwise reads one line.
func readPassword(stdin io.Reader, stderr io.Writer, name string) ([]byte, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "Password for %s: ", name)
		p, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(stderr, "Again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		if !bytes.Equal(p, again) {
			return nil, errors.New("the passwords differ")
		}
		return checkPassword(p)
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, maxPasswordLen+2)).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read password from stdin: %w", err)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return checkPassword(line)
}

func checkPassword(p []byte) ([]byte, error) {
	switch {
	case len(p) == 0:
		return nil, errors.New("empty password (give it on stdin, one line)")
	case len(p) > maxPasswordLen:
		return nil, fmt.Errorf("password longer than %d bytes", maxPasswordLen)
	}
	return p, nil
}
