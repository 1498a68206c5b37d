//! The key layout under one cluster's prefix (see the crate documentation).

/// The keys of one cluster.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            prefix: format!("/{name}/"),
        }
    }

    pub(crate) fn meta(&self) -> String {
        format!("{}meta", self.prefix)
    }

    pub(crate) fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }

    pub(crate) fn members(&self) -> String {
        format!("{}members/", self.prefix)
    }

    pub(crate) fn member(&self, url: &str) -> String {
        format!("{}members/{url}", self.prefix)
    }

    pub(crate) fn entries(&self) -> String {
        format!("{}entry/", self.prefix)
    }

    pub(crate) fn entry(&self, kind: &str, id: &str) -> String {
        format!("{}entry/{kind}/{id}", self.prefix)
    }

    /// Splits an entry key into kind and id.
    pub(crate) fn parse_entry<'a>(&self, key: &'a str) -> Option<(&'a str, &'a str)> {
        key.strip_prefix(self.prefix.as_str())?
            .strip_prefix("entry/")?
            .split_once('/')
    }

    pub(crate) fn log(&self) -> String {
        format!("{}log/", self.prefix)
    }

    /// Zero-padded, so that etcd's byte order is revision order.
    pub(crate) fn log_at(&self, revision: u64) -> String {
        format!("{}log/{revision:020}", self.prefix)
    }
}

/// The end of the range of keys that start with `prefix`, as etcd's `with_prefix` computes it.
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_revision_and_entry_keys_parse_back() {
        let keys = Keys::new("rbee");
        assert!(keys.log_at(9) < keys.log_at(10));
        assert_eq!(
            keys.parse_entry(&keys.entry("worker", "studio-1")),
            Some(("worker", "studio-1"))
        );
        assert_eq!(keys.parse_entry("/other/entry/worker/x"), None);
        assert_eq!(prefix_end("/rbee/log/"), b"/rbee/log0".to_vec());
    }
}
