//! Where an env's port is reached: a template of the upstream address with `{env}`,
//! `{namespace}` and `{port}`.
//!
//! The default, `{env}.{namespace}.svc:{port}`, is the env Service's DNS name: the cluster's
//! resolver answers it (the pod's search path completes the cluster domain), the gateway needs
//! no permission to read Services, and a Service recreated with a new cluster IP keeps working.
//! Local runs on devcluster, whose Services have no network, use a loopback template such as
//! `127.0.0.1:{port}`.

use hyper::http::uri::Authority;

/// The default template: the env Service's DNS name.
pub const DEFAULT_TEMPLATE: &str = "{env}.{namespace}.svc:{port}";
/// The template of runs on one machine: every env port on loopback.
pub const LOOPBACK_TEMPLATE: &str = "127.0.0.1:{port}";

/// A checked upstream address template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTemplate(String);

impl UpstreamTemplate {
    /// Checks `template`: it must name the port, use no other placeholder, and give a valid
    /// `host:port` address.
    pub fn parse(template: &str) -> Result<Self, String> {
        if !template.contains("{port}") {
            return Err(format!(
                "upstream template {template:?}: it must contain {{port}}"
            ));
        }
        let rest = template
            .replace("{env}", "")
            .replace("{namespace}", "")
            .replace("{port}", "");
        if rest.contains('{') || rest.contains('}') {
            return Err(format!(
                "upstream template {template:?}: only {{env}}, {{namespace}} and {{port}} can be used"
            ));
        }
        let checked = UpstreamTemplate(template.to_string());
        checked
            .authority("an-env", "a-namespace", 8000)
            .map_err(|problem| format!("upstream template {template:?}: {problem}"))?;
        Ok(checked)
    }

    /// [`LOOPBACK_TEMPLATE`].
    pub fn loopback() -> Self {
        UpstreamTemplate(LOOPBACK_TEMPLATE.to_string())
    }

    /// The address of `port` of env `env` in `namespace`.
    pub fn authority(&self, env: &str, namespace: &str, port: u16) -> Result<Authority, String> {
        // One pass over the template (this runs for every proxied request).
        let mut text = String::with_capacity(self.0.len() + env.len() + namespace.len());
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            rest = &rest[open..];
            let (value, placeholder): (&dyn std::fmt::Display, &str) = if rest.starts_with("{env}")
            {
                (&env, "{env}")
            } else if rest.starts_with("{namespace}") {
                (&namespace, "{namespace}")
            } else if rest.starts_with("{port}") {
                (&port, "{port}")
            } else {
                (&"{", "{")
            };
            use std::fmt::Write as _;
            let _ = write!(text, "{value}");
            rest = &rest[placeholder.len()..];
        }
        text.push_str(rest);
        let authority = Authority::try_from(text.as_str())
            .map_err(|_| format!("{text:?} is not a host:port address"))?;
        if authority.port_u16().is_none() {
            return Err(format!("{text:?} has no port"));
        }
        Ok(authority)
    }
}

impl Default for UpstreamTemplate {
    fn default() -> Self {
        UpstreamTemplate(DEFAULT_TEMPLATE.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_template_is_a_valid_one_on_this_machine() {
        let template = UpstreamTemplate::loopback();
        assert_eq!(
            Ok(template.clone()),
            UpstreamTemplate::parse(LOOPBACK_TEMPLATE)
        );
        assert_eq!(
            template.authority("nicks", "eph", 8000).unwrap().as_str(),
            "127.0.0.1:8000"
        );
    }

    #[test]
    fn the_default_is_the_service_dns_name() {
        let template = UpstreamTemplate::parse(DEFAULT_TEMPLATE).unwrap();
        assert_eq!(template, UpstreamTemplate::default());
        assert_eq!(
            template.authority("nicks", "envs", 10350).unwrap(),
            "nicks.envs.svc:10350"
        );
    }

    #[test]
    fn a_loopback_template_for_local_runs() {
        let template = UpstreamTemplate::parse("127.0.0.1:{port}").unwrap();
        assert_eq!(
            template.authority("x", "y", 8000).unwrap(),
            "127.0.0.1:8000"
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        assert!(
            UpstreamTemplate::parse("{env}.svc")
                .unwrap_err()
                .contains("must contain {port}")
        );
        assert!(
            UpstreamTemplate::parse("{env}.{ns}.svc:{port}")
                .unwrap_err()
                .contains("only {env}")
        );
        assert!(
            UpstreamTemplate::parse("http://{env}:{port}/x")
                .unwrap_err()
                .contains("not a host:port")
        );
    }
}
