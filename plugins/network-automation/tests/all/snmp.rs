//! SNMP v2c and v3 (authPriv SHA/AES) against a real Net-SNMP `snmpd`:
//! GET, GETNEXT, GETBULK, walks, and the failures a wrong community or a
//! wrong v3 pass phrase cause.

use plugin_api::network_automation::{
    NetworkAutomation, SnmpOperation, SnmpRequest, SnmpTarget, SnmpUser, SnmpValue, SnmpVersion,
    VarBind,
};
use plugkit_network_automation::NetworkPlugin;
use plugkit_testkit::snmpd::{
    Snmpd, BINARY_OID, BINARY_VALUE, COMMUNITY, SYS_LOCATION, SYS_NAME, V3_AUTH_PASSWORD,
    V3_PRIV_PASSWORD, V3_USER,
};
use serde_json::json;

use crate::{plugin_with, provider_error};

const SYS_DESCR_0: &str = "1.3.6.1.2.1.1.1.0";
const SYS_NAME_0: &str = "1.3.6.1.2.1.1.5.0";
const SYS_LOCATION_0: &str = "1.3.6.1.2.1.1.6.0";
const IF_TABLE: &str = "1.3.6.1.2.1.2.2";
const IF_DESCR: &str = "1.3.6.1.2.1.2.2.1.2";

fn snmpd() -> &'static Snmpd {
    Snmpd::shared().expect("snmpd starts")
}

/// A tenant whose defaults are the agent's community and v3 user.
fn plugin() -> NetworkPlugin {
    plugin_with(
        "isp",
        json!({
            "snmp_community": COMMUNITY,
            "snmp_v3_user": V3_USER,
            "snmp_v3_auth_protocol": "SHA",
            "snmp_v3_auth_password": V3_AUTH_PASSWORD,
            "snmp_v3_priv_protocol": "AES",
            "snmp_v3_priv_password": V3_PRIV_PASSWORD,
        }),
    )
}

fn request(version: SnmpVersion, operation: SnmpOperation, oids: &[&str]) -> SnmpRequest {
    SnmpRequest {
        target: SnmpTarget {
            address: snmpd().address().into(),
            version,
            community: None.into(),
            user: None.into(),
            timeout_ms: 2_000,
            retries: 1,
        },
        operation,
        oids: oids.iter().map(|o| (*o).into()).collect(),
    }
}

fn text(varbinds: &[VarBind], oid: &str) -> String {
    match varbinds
        .iter()
        .find(|vb| vb.oid.as_str() == oid)
        .map(|vb| &vb.value)
    {
        Some(SnmpValue::OctetString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        other => panic!("{oid}: expected an OCTET STRING, got {other:?} in {varbinds:?}"),
    }
}

fn oid_parts(oid: &str) -> Vec<u64> {
    oid.split('.')
        .map(|p| p.parse().expect("numeric OID"))
        .collect()
}

#[test]
fn v2c_get_reads_sys_descr_and_sys_name() {
    let varbinds = plugin()
        .snmp(
            "isp",
            request(
                SnmpVersion::V2c,
                SnmpOperation::Get,
                &[SYS_DESCR_0, SYS_NAME_0],
            ),
        )
        .expect("GET succeeds");
    assert_eq!(varbinds.len(), 2);
    assert!(
        text(&varbinds, SYS_DESCR_0).starts_with("Linux"),
        "{varbinds:?}"
    );
    assert_eq!(text(&varbinds, SYS_NAME_0), SYS_NAME);
}

#[test]
fn v3_auth_priv_get_reads_sys_descr_and_sys_name_with_tenant_defaults() {
    let varbinds = plugin()
        .snmp(
            "isp",
            request(
                SnmpVersion::V3,
                SnmpOperation::Get,
                &[SYS_DESCR_0, SYS_NAME_0, SYS_LOCATION_0],
            ),
        )
        .expect("v3 GET succeeds");
    assert!(
        text(&varbinds, SYS_DESCR_0).starts_with("Linux"),
        "{varbinds:?}"
    );
    assert_eq!(text(&varbinds, SYS_NAME_0), SYS_NAME);
    assert_eq!(text(&varbinds, SYS_LOCATION_0), SYS_LOCATION);
}

#[test]
fn v3_credentials_in_the_request_override_the_tenant() {
    // This tenant has no SNMP defaults at all.
    let plugin = plugin_with("bare", json!({}));
    let mut req = request(SnmpVersion::V3, SnmpOperation::Get, &[SYS_NAME_0]);
    req.target.user = Some(SnmpUser {
        user: V3_USER.into(),
        auth_protocol: "SHA-1".into(),
        auth_password: V3_AUTH_PASSWORD.into(),
        priv_protocol: "AES-128".into(),
        priv_password: V3_PRIV_PASSWORD.into(),
    })
    .into();
    let varbinds = plugin.snmp("bare", req).expect("v3 GET succeeds");
    assert_eq!(text(&varbinds, SYS_NAME_0), SYS_NAME);
}

// Issue 14, item 6: device output is bytes; an OCTET STRING that is not
// UTF-8 must reach the caller unchanged, over v2c and v3 alike.
#[test]
fn an_octet_string_that_is_not_utf8_reaches_the_caller_byte_for_byte() {
    for version in [SnmpVersion::V2c, SnmpVersion::V3] {
        let varbinds = plugin()
            .snmp("isp", request(version, SnmpOperation::Get, &[BINARY_OID]))
            .unwrap_or_else(|e| panic!("{version:?}: {e}\nsnmpd log:\n{}", snmpd().log()));
        assert_eq!(
            varbinds,
            [VarBind {
                oid: BINARY_OID.into(),
                value: SnmpValue::OctetString(BINARY_VALUE.to_vec().into()),
            }],
            "{version:?}"
        );
    }
}

#[test]
fn getnext_returns_the_following_instance() {
    for version in [SnmpVersion::V2c, SnmpVersion::V3] {
        // sysName (the object) → sysName.0 (its instance); sysName.0 → sysLocation.0.
        let varbinds = plugin()
            .snmp(
                "isp",
                request(
                    version,
                    SnmpOperation::GetNext,
                    &["1.3.6.1.2.1.1.5", SYS_NAME_0],
                ),
            )
            .expect("GETNEXT succeeds");
        let oids: Vec<&str> = varbinds.iter().map(|vb| vb.oid.as_str()).collect();
        assert_eq!(oids, [SYS_NAME_0, SYS_LOCATION_0], "{version:?}");
        assert_eq!(text(&varbinds, SYS_NAME_0), SYS_NAME);
    }
}

#[test]
fn getbulk_returns_non_repeaters_then_rows() {
    for version in [SnmpVersion::V2c, SnmpVersion::V3] {
        let varbinds = plugin()
            .snmp(
                "isp",
                request(
                    version,
                    SnmpOperation::GetBulk {
                        non_repeaters: 1,
                        max_repetitions: 2,
                    },
                    &["1.3.6.1.2.1.1.1", IF_DESCR],
                ),
            )
            .expect("GETBULK succeeds");
        // One row for the non-repeater, then up to two ifDescr rows.
        assert_eq!(varbinds.len(), 3, "{varbinds:?}");
        assert_eq!(varbinds[0].oid.as_str(), SYS_DESCR_0);
        assert_eq!(varbinds[1].oid.as_str(), format!("{IF_DESCR}.1"));
        assert_eq!(text(&varbinds, &format!("{IF_DESCR}.1")), "lo");
    }
}

#[test]
fn walk_of_if_table_starts_with_lo_and_stays_in_order() {
    for version in [SnmpVersion::V2c, SnmpVersion::V3] {
        let rows = plugin()
            .snmp("isp", request(version, SnmpOperation::Walk, &[IF_TABLE]))
            .expect("walk succeeds");
        // ifIndex.1 = 1 first, and more rows than one GETBULK (25) holds:
        // at least 22 columns for lo and for each other interface.
        assert_eq!(rows[0].oid.as_str(), "1.3.6.1.2.1.2.2.1.1.1");
        assert_eq!(rows[0].value, SnmpValue::Integer(1));
        assert!(rows.len() > 25, "{} rows", rows.len());
        assert_eq!(text(&rows, &format!("{IF_DESCR}.1")), "lo");
        let root = oid_parts(IF_TABLE);
        let parts: Vec<Vec<u64>> = rows.iter().map(|r| oid_parts(r.oid.as_str())).collect();
        assert!(
            parts.iter().all(|p| p.starts_with(&root)),
            "{version:?}: left the subtree"
        );
        assert!(
            parts.windows(2).all(|w| w[0] < w[1]),
            "{version:?}: not increasing"
        );
    }
}

#[test]
fn walk_of_a_single_instance_returns_it() {
    let rows = plugin()
        .snmp(
            "isp",
            request(SnmpVersion::V2c, SnmpOperation::Walk, &[SYS_NAME_0]),
        )
        .expect("walk succeeds");
    assert_eq!(rows.len(), 1);
    assert_eq!(text(&rows, SYS_NAME_0), SYS_NAME);
}

#[test]
fn missing_instance_is_reported_as_no_such_object() {
    let varbinds = plugin()
        .snmp(
            "isp",
            request(
                SnmpVersion::V2c,
                SnmpOperation::Get,
                &["1.3.6.1.2.1.1.99.0"],
            ),
        )
        .expect("GET succeeds");
    assert!(
        matches!(
            varbinds[0].value,
            SnmpValue::NoSuchObject | SnmpValue::NoSuchInstance
        ),
        "{varbinds:?}"
    );
}

#[test]
fn wrong_community_is_a_timeout() {
    let mut req = request(SnmpVersion::V2c, SnmpOperation::Get, &[SYS_NAME_0]);
    req.target.community = Some("not-the-community".into()).into();
    req.target.timeout_ms = 300;
    req.target.retries = 1;
    let (code, message) = provider_error(plugin().snmp("isp", req));
    assert_eq!(code, "snmp_timeout");
    assert!(message.contains(&snmpd().address()), "{message}");
    assert!(message.contains("2 attempt(s)"), "{message}");
    assert!(message.contains("community"), "{message}");
    assert!(
        !message.contains("not-the-community"),
        "credential in error: {message}"
    );
}

fn v3_request_with(auth_password: &str, priv_password: &str) -> SnmpRequest {
    let mut req = request(SnmpVersion::V3, SnmpOperation::Get, &[SYS_NAME_0]);
    req.target.user = Some(SnmpUser {
        user: V3_USER.into(),
        auth_protocol: "SHA".into(),
        auth_password: auth_password.into(),
        priv_protocol: "AES".into(),
        priv_password: priv_password.into(),
    })
    .into();
    req
}

#[test]
fn wrong_v3_auth_password_is_an_authentication_error_not_a_timeout() {
    let (code, message) =
        provider_error(plugin().snmp("isp", v3_request_with("wrong-auth-pass", V3_PRIV_PASSWORD)));
    assert_eq!(code, "snmp_auth_failed", "{message}");
    assert!(message.contains(V3_USER), "{message}");
    assert!(message.contains("usmStatsWrongDigests"), "{message}");
    assert!(
        !message.contains("wrong-auth-pass"),
        "credential in error: {message}"
    );
}

#[test]
fn wrong_v3_priv_password_is_an_authentication_error_not_a_timeout() {
    let (code, message) =
        provider_error(plugin().snmp("isp", v3_request_with(V3_AUTH_PASSWORD, "wrong-priv-pass")));
    // Net-SNMP drops what it cannot decrypt; the plugin still says why.
    assert_eq!(code, "snmp_auth_failed", "{message}");
    assert!(message.contains("privacy pass phrase"), "{message}");
    assert!(
        !message.contains("wrong-priv-pass"),
        "credential in error: {message}"
    );
}

#[test]
fn unknown_v3_user_is_an_authentication_error() {
    let mut req = v3_request_with(V3_AUTH_PASSWORD, V3_PRIV_PASSWORD);
    if let Some(user) = req.target.user.as_mut().into_option() {
        user.user = "nobody".into();
    }
    let (code, message) = provider_error(plugin().snmp("isp", req));
    assert_eq!(code, "snmp_auth_failed", "{message}");
}
