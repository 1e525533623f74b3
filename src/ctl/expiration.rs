//! `mainstayctl certs check-expiration`: the etcd rows of `kubeadm certs check-expiration`
//! (kubeadm `cmd/kubeadm/app/cmd/certs.go`, `certTextPrinter`).
//!
//! Output, aligned like Go's `tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)`:
//!
//! ```text
//! CERTIFICATE               EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED
//! apiserver-etcd-client     Nov 29, 2027 13:41 UTC   364d            etcd-ca                 no
//! …
//!
//! CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED
//! etcd-ca                 Nov 27, 2036 13:41 UTC   9y              no
//! ```
//!
//! Leaves are listed by name; a missing one reads `!MISSING! <name>`. Dates are
//! `Jan 02, 2006 15:04 UTC`, residual times apimachinery's `ShortHumanDuration`
//! (`<invalid>` once expired). A certificate counts as externally managed when the CA key is
//! absent (kubeadm's external-CA mode).

use std::path::Path;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::CtlError;
use super::certs::{CertSpec, ETCD_CA, LEAVES};
use super::keys::read_cert_der;
use super::tabwriter::align;

/// `tabwriter` minimum cell width kubeadm uses.
const TAB_MIN_WIDTH: usize = 10;
/// `tabwriter` padding kubeadm uses.
const TAB_PADDING: usize = 3;

/// The report for the PKI under `cert_dir` at `now`.
///
/// # Errors
/// [`CtlError::Io`]/[`CtlError::Parse`] for a certificate file that exists but cannot be read.
pub fn report(cert_dir: &Path, now: OffsetDateTime) -> Result<String, CtlError> {
    let external = !ETCD_CA.key_path(cert_dir).exists();
    let mut leaves: Vec<&CertSpec> = LEAVES.iter().collect();
    leaves.sort_by_key(|s| s.name);
    let mut text =
        String::from("CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED\n");
    for spec in leaves {
        match not_after(spec, cert_dir)? {
            None => text.push_str(&format!("!MISSING! {}\t\t\t\t\n", spec.name)),
            Some(t) => text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{:<8}\n",
                spec.name,
                go_date(t),
                short_human_duration((t - now).whole_seconds()),
                ETCD_CA.name,
                yes_no(external)
            )),
        }
    }
    text.push('\n');
    text.push_str("CERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED\n");
    match not_after(&ETCD_CA, cert_dir)? {
        None => text.push_str(&format!("!MISSING! {}\t\t\t\n", ETCD_CA.name)),
        Some(t) => text.push_str(&format!(
            "{}\t{}\t{}\t{:<8}\n",
            ETCD_CA.name,
            go_date(t),
            short_human_duration((t - now).whole_seconds()),
            yes_no(external)
        )),
    }
    Ok(align(&text, TAB_MIN_WIDTH, TAB_PADDING))
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn not_after(spec: &CertSpec, dir: &Path) -> Result<Option<OffsetDateTime>, CtlError> {
    let path = spec.cert_path(dir);
    if !path.exists() {
        return Ok(None);
    }
    let der = read_cert_der(&path)?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| CtlError::parse(&path, e))?;
    Ok(Some(cert.validity().not_after.to_datetime()))
}

/// Go's `t.UTC().Format("Jan 02, 2006 15:04 MST")`.
pub fn go_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let month = match t.month() {
        time::Month::January => "Jan",
        time::Month::February => "Feb",
        time::Month::March => "Mar",
        time::Month::April => "Apr",
        time::Month::May => "May",
        time::Month::June => "Jun",
        time::Month::July => "Jul",
        time::Month::August => "Aug",
        time::Month::September => "Sep",
        time::Month::October => "Oct",
        time::Month::November => "Nov",
        time::Month::December => "Dec",
    };
    format!(
        "{month} {:02}, {} {:02}:{:02} UTC",
        t.day(),
        t.year(),
        t.hour(),
        t.minute()
    )
}

/// apimachinery `duration.ShortHumanDuration` for a duration in whole seconds: `<invalid>`
/// below -1 s (2 s tolerance for clock skew), then `Ns`, `Nm`, `Nh`, `Nd` (under a 365-day
/// year), `Ny`.
pub fn short_human_duration(seconds: i64) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;
    match seconds {
        s if s < -1 => "<invalid>".to_owned(),
        s if s < 0 => "0s".to_owned(),
        s if s < MINUTE => format!("{s}s"),
        s if s < HOUR => format!("{}m", s / MINUTE),
        s if s < DAY => format!("{}h", s / HOUR),
        s if s < YEAR => format!("{}d", s / DAY),
        s => format!("{}y", s / YEAR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_times_follow_short_human_duration() {
        assert_eq!(short_human_duration(-5), "<invalid>");
        assert_eq!(short_human_duration(-1), "0s");
        assert_eq!(short_human_duration(59), "59s");
        assert_eq!(short_human_duration(3599), "59m");
        assert_eq!(short_human_duration(86_399), "23h");
        assert_eq!(short_human_duration(364 * 86_400 + 5), "364d");
        assert_eq!(short_human_duration(3650 * 86_400), "10y");
        assert_eq!(short_human_duration(3649 * 86_400), "9y");
    }

    #[test]
    fn dates_use_gos_reference_layout() {
        let t = time::Date::from_calendar_date(2027, time::Month::March, 5)
            .unwrap()
            .with_hms(7, 9, 59)
            .unwrap()
            .assume_utc();
        assert_eq!(go_date(t), "Mar 05, 2027 07:09 UTC");
    }
}
