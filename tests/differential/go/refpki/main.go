// refpki: writes a PKI with smallstep's own pki package (0.19), the code `step ca init` runs, so
// tests/differential can serve smallstep's PKI with both servers.
//
//	STEPPATH=DIR refpki -name NAME -address HOST:PORT -dns a,b -provisioner admin -password-file F
//
// writes DIR/certs, DIR/secrets and DIR/config/{ca,defaults}.json and prints the root fingerprint.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/smallstep/certificates/cas/apiv1"
	_ "github.com/smallstep/certificates/cas/softcas"
	_ "github.com/smallstep/certificates/kms/softkms"
	"github.com/smallstep/certificates/pki"
)

func main() {
	name := flag.String("name", "Smallstep", "the PKI's name (root and intermediate subjects)")
	address := flag.String("address", "127.0.0.1:9000", "the CA's address")
	dns := flag.String("dns", "localhost", "the CA's names, comma-separated")
	provisioner := flag.String("provisioner", "admin", "the JWK provisioner's name")
	passwordFile := flag.String("password-file", "", "the password of the keys (required)")
	flag.Parse()
	if os.Getenv("STEPPATH") == "" || *passwordFile == "" {
		fail(fmt.Errorf("STEPPATH and -password-file are required"))
	}
	raw, err := os.ReadFile(*passwordFile)
	if err != nil {
		fail(err)
	}
	password := bytes.TrimRight(raw, "\r\n")

	p, err := pki.New(apiv1.Options{Type: apiv1.SoftCAS, IsCreator: true},
		pki.WithAddress(*address), pki.WithDNSNames(strings.Split(*dns, ",")),
		pki.WithProvisioner(*provisioner))
	if err != nil {
		fail(err)
	}
	// `step ca init --name N` passes N as the name, the organization and the resource.
	root, err := p.GenerateRootCertificate(*name, *name, *name, password)
	if err != nil {
		fail(err)
	}
	for _, step := range []func() error{
		func() error { return p.GenerateIntermediateCertificate(*name, *name, *name, root, password) },
		func() error { return p.GenerateKeyPairs(password) },
		func() error { return p.Save() },
	} {
		if err := step(); err != nil {
			fail(err)
		}
	}
	fmt.Println(p.GetRootFingerprint())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "refpki:", err)
	os.Exit(1)
}
