//! TLS for the transport: a self-signed certificate made from the node's
//! ed25519 key, and verifiers that accept exactly such certificates.
//!
//! There is no CA. Trust comes from the key itself: a peer's node id is
//! BLAKE3 of the ed25519 key in its certificate, and the TLS 1.3 handshake
//! signature proves that the peer holds that key. Callers that know whom they
//! dial compare the id afterwards. Both sides present a certificate.
//!
//! Every rustls config here gets the ring provider explicitly; the process
//! default provider is never consulted.

use super::TransportError;
use cairn_core::NodeId;
use cairn_core::wire::ALPN;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;
use x509_parser::oid_registry::OID_SIG_ED25519;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The server name every node dials and every certificate carries; identity
/// is the key, not the name.
pub(crate) const SERVER_NAME: &str = "cairn";

/// The node's certificate and key in the forms rustls takes.
struct Credentials {
    certificate: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn credentials(key: &SigningKey) -> Result<Credentials, TransportError> {
    let tls_error =
        |what: &str, error: &dyn std::fmt::Display| TransportError::Tls(format!("{what}: {error}"));
    let pkcs8 = key
        .to_pkcs8_der()
        .map_err(|error| tls_error("cannot encode the node key as PKCS#8", &error))?;
    let key_der = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
    let key_pair = rcgen::KeyPair::try_from(&key_der)
        .map_err(|error| tls_error("cannot load the node key into rcgen", &error))?;
    let params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])
        .map_err(|error| tls_error("cannot build certificate parameters", &error))?;
    let certificate = params
        .self_signed(&key_pair)
        .map_err(|error| tls_error("cannot sign the node certificate", &error))?;
    Ok(Credentials {
        certificate: certificate.der().clone(),
        key: key_der,
    })
}

/// The rustls configs for both directions, sharing one certificate.
pub(crate) fn configs(
    key: &SigningKey,
) -> Result<(rustls::ServerConfig, rustls::ClientConfig), TransportError> {
    let Credentials { certificate, key } = credentials(key)?;
    let provider = provider();
    let verifier = Arc::new(PeerKeyVerifier {
        algorithms: provider.signature_verification_algorithms,
    });
    let tls_error = |error: rustls::Error| TransportError::Tls(error.to_string());

    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(
            vec![certificate.clone()],
            PrivateKeyDer::Pkcs8(key.clone_key()),
        )
        .map_err(tls_error)?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    // No resumption: every connection shows its certificate, so the peer id
    // always comes from a full handshake.
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;

    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![certificate], PrivateKeyDer::Pkcs8(key))
        .map_err(tls_error)?;
    client.alpn_protocols = vec![ALPN.to_vec()];
    client.resumption = rustls::client::Resumption::disabled();

    Ok((server, client))
}

/// The node id of the ed25519 key in a DER certificate.
pub(crate) fn node_id_of_certificate(der: &[u8]) -> Result<NodeId, String> {
    let (_, certificate) = X509Certificate::from_der(der)
        .map_err(|error| format!("the peer certificate does not parse: {error}"))?;
    let public_key = certificate.public_key();
    if public_key.algorithm.algorithm != OID_SIG_ED25519 {
        return Err(format!(
            "the peer certificate's key is {}, not ed25519",
            public_key.algorithm.algorithm
        ));
    }
    let key: [u8; 32] = public_key
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| "the peer certificate's ed25519 key is not 32 bytes".to_string())?;
    Ok(NodeId::from_public_key(&key))
}

/// The node id of the peer of an established connection.
pub(crate) fn peer_node_id(connection: &quinn::Connection) -> Result<NodeId, String> {
    let identity = connection
        .peer_identity()
        .ok_or_else(|| "the peer presented no certificate".to_string())?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| "the peer identity is not a certificate chain".to_string())?;
    let end_entity = chain
        .first()
        .ok_or_else(|| "the peer presented an empty certificate chain".to_string())?;
    node_id_of_certificate(end_entity)
}

/// Accepts any single self-signed ed25519 certificate and checks the TLS 1.3
/// handshake signature against its key. Used for both directions.
#[derive(Debug)]
struct PeerKeyVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl PeerKeyVerifier {
    fn check_certificate(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General(
                "a cairn peer presents exactly one self-signed certificate".into(),
            ));
        }
        node_id_of_certificate(end_entity)
            .map(|_| ())
            .map_err(rustls::Error::General)
    }

    fn check_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if signature.scheme != SignatureScheme::ED25519 {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }
}

/// Node keys are ed25519, and only that.
const VERIFY_SCHEMES: &[SignatureScheme] = &[SignatureScheme::ED25519];

/// QUIC is TLS 1.3 only: a TLS 1.2 signature is never acceptable.
fn refuse_tls12() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::PeerIncompatible(
        rustls::PeerIncompatible::Tls13RequiredForQuic,
    ))
}

impl ServerCertVerifier for PeerKeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check_certificate(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _certificate: &CertificateDer<'_>,
        _signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        VERIFY_SCHEMES.to_vec()
    }
}

impl ClientCertVerifier for PeerKeyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check_certificate(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _certificate: &CertificateDer<'_>,
        _signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        VERIFY_SCHEMES.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_names_the_node_by_its_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let credentials = credentials(&key).expect("credentials");
        let id = node_id_of_certificate(&credentials.certificate).expect("id");
        assert_eq!(id, NodeId::from_public_key(&key.verifying_key().to_bytes()));
    }

    #[test]
    fn a_non_ed25519_certificate_is_refused() {
        let key_pair =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256 key");
        let certificate = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])
            .expect("params")
            .self_signed(&key_pair)
            .expect("sign");
        let error = node_id_of_certificate(certificate.der()).expect_err("must refuse");
        assert!(error.contains("not ed25519"), "{error}");
        assert!(node_id_of_certificate(b"not a certificate").is_err());
    }

    #[test]
    fn both_configs_build_with_the_ring_provider() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let (server, client) = configs(&key).expect("configs");
        assert_eq!(server.alpn_protocols, vec![ALPN.to_vec()]);
        assert_eq!(client.alpn_protocols, vec![ALPN.to_vec()]);
    }
}
