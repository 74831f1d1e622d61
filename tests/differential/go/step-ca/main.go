// step-ca: smallstep's CA server 0.19, built from Debian's Go source package, which ships the
// library but not the command. The test oracle of tests/differential (scripts/reference-stepca).
package main

import (
	"fmt"
	"os"

	"github.com/smallstep/certificates/authority"
	_ "github.com/smallstep/certificates/cas/softcas"
	"github.com/smallstep/certificates/commands"
	_ "github.com/smallstep/certificates/kms/softkms"
	"github.com/urfave/cli"
)

func main() {
	authority.GlobalVersion.Version = "0.19.0" // what GET /version reports
	app := cli.NewApp()
	app.Name = "step-ca"
	app.Usage = "the reference step-ca 0.19 for stepca's differential tests"
	app.Commands = []cli.Command{commands.AppCommand}
	// Run as a subcommand: urfave/cli lets a command's flags follow its arguments
	// (`step-ca ca.json --password-file F`), an app's not.
	args := append([]string{os.Args[0], commands.AppCommand.Name}, os.Args[1:]...)
	if err := app.Run(args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
