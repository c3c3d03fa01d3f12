// Package tlstest makes the certificates TLS tests need, fresh for each
// test: a CA, a server certificate it signs for 127.0.0.1, ::1 and
// localhost, and a client certificate it signs, written as PEM files.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is the files New wrote and the CA as a pool.
type PKI struct {
	CA                    string // ca.pem
	ServerCert, ServerKey string // server.pem, server-key.pem
	ClientCert, ClientKey string // client.pem, client-key.pem (CN "dstwatch-test-client")
	// OtherCert, OtherKey are a client certificate from a CA nobody trusts.
	OtherCert, OtherKey string
	Pool                *x509.CertPool
}

// New writes a fresh CA and its certificates into dir.
func New(dir string) (*PKI, error) {
	p := &PKI{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
		OtherCert: filepath.Join(dir, "other.pem"), OtherKey: filepath.Join(dir, "other-key.pem"),
		Pool: x509.NewCertPool(),
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dstwatch test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caKey, caDER, err := sign(caTmpl, nil, nil)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.Pool.AddCert(ca)
	if err := writePEM(p.CA, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
	}
	srv := leaf(2, "localhost", x509.ExtKeyUsageServerAuth)
	srv.DNSNames = []string{"localhost"}
	srv.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if err := issue(srv, ca, caKey, p.ServerCert, p.ServerKey); err != nil {
		return nil, err
	}
	if err := issue(leaf(3, "dstwatch-test-client", x509.ExtKeyUsageClientAuth), ca, caKey, p.ClientCert, p.ClientKey); err != nil {
		return nil, err
	}
	// A client certificate signed by a CA of its own, which the server
	// does not trust.
	otherCA := *caTmpl
	otherCA.Subject.CommonName = "untrusted CA"
	otherKey, otherDER, err := sign(&otherCA, nil, nil)
	if err != nil {
		return nil, err
	}
	other, _ := x509.ParseCertificate(otherDER)
	if err := issue(leaf(4, "dstwatch-test-client", x509.ExtKeyUsageClientAuth), other, otherKey, p.OtherCert, p.OtherKey); err != nil {
		return nil, err
	}
	return p, nil
}

// Client is a TLS config that trusts the CA and, with withCert, presents
// the client certificate.
func (p *PKI) Client(withCert bool) (*tls.Config, error) {
	c := &tls.Config{RootCAs: p.Pool}
	if withCert {
		cert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// sign makes a key and a certificate for tmpl, signed by parent (self-signed
// when parent is nil).
func sign(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	return key, der, err
}

func issue(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certPath, keyPath string) error {
	key, der, err := sign(tmpl, ca, caKey)
	if err != nil {
		return err
	}
	if err := writePEM(certPath, "CERTIFICATE", der); err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(keyPath, "PRIVATE KEY", kder)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
