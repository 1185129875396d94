//! Checks a GraphQL document costs before anything else does (before authentication, before
//! async-graphql validates it): its size, and how many fields it selects once every fragment
//! spread is expanded. A ~1 KB document whose fragments each spread the previous one twice
//! selects 2ⁿ fields; validating or executing it would stall the server. The expansion is counted
//! with each fragment's size memoised, so the check is linear in the document.

use std::collections::HashMap;

use async_graphql::parser::types::{
    ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::parser::Positioned;
use async_graphql::Name;

use super::error::ApiError;

/// Longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 32 * 1024;
/// Most fields a document may select with every fragment expanded.
pub const MAX_EXPANDED_FIELDS: u64 = 2_000;
/// Most fragment definitions in one document.
pub const MAX_FRAGMENTS: usize = 100;
/// Most operations in one document.
pub const MAX_OPERATIONS: usize = 20;

/// Ok when the request's document is small enough to validate and run. The document is parsed
/// once: `Request::parsed_query` keeps it for the execution that follows.
pub fn check_request(request: &mut async_graphql::Request) -> Result<(), ApiError> {
    if request.query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "the query is {} bytes; at most {MAX_QUERY_BYTES}",
            request.query.len()
        )));
    }
    // A document that does not parse is left to async-graphql, which reports where.
    match request.parsed_query() {
        Ok(document) => check_document(document),
        Err(_) => Ok(()),
    }
}

/// [`check_request`] of a bare query.
pub fn check_query(query: &str) -> Result<(), ApiError> {
    check_request(&mut async_graphql::Request::new(query))
}

fn check_document(document: &ExecutableDocument) -> Result<(), ApiError> {
    if document.fragments.len() > MAX_FRAGMENTS {
        return Err(too_complex(format!(
            "{} fragments; at most {MAX_FRAGMENTS}",
            document.fragments.len()
        )));
    }
    let operations: Vec<_> = document.operations.iter().collect();
    if operations.len() > MAX_OPERATIONS {
        return Err(too_complex(format!(
            "{} operations; at most {MAX_OPERATIONS}",
            operations.len()
        )));
    }
    let mut counter = Counter {
        fragments: &document.fragments,
        sizes: HashMap::new(),
        visiting: Vec::new(),
    };
    let mut total: u64 = 0;
    for (_, operation) in operations {
        total = total.saturating_add(counter.selection_set(&operation.node.selection_set.node)?);
        if total > MAX_EXPANDED_FIELDS {
            return Err(too_complex(format!(
                "it selects more than {MAX_EXPANDED_FIELDS} fields once its fragments are \
                 expanded"
            )));
        }
    }
    Ok(())
}

fn too_complex(detail: String) -> ApiError {
    ApiError::BadUserInput(format!("query too complex: {detail}"))
}

struct Counter<'d> {
    fragments: &'d HashMap<Name, Positioned<FragmentDefinition>>,
    sizes: HashMap<&'d str, u64>,
    visiting: Vec<&'d str>,
}

impl<'d> Counter<'d> {
    fn selection_set(&mut self, set: &'d SelectionSet) -> Result<u64, ApiError> {
        let mut n: u64 = 0;
        for item in &set.items {
            let size = match &item.node {
                Selection::Field(field) => {
                    1u64.saturating_add(self.selection_set(&field.node.selection_set.node)?)
                }
                Selection::InlineFragment(inline) => {
                    self.selection_set(&inline.node.selection_set.node)?
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())?
                }
            };
            // Capped just above the limit: the caller only needs to know it is over.
            n = n.saturating_add(size).min(MAX_EXPANDED_FIELDS + 1);
        }
        Ok(n)
    }

    fn fragment(&mut self, name: &'d str) -> Result<u64, ApiError> {
        if let Some(size) = self.sizes.get(name) {
            return Ok(*size);
        }
        if self.visiting.contains(&name) {
            return Err(ApiError::BadUserInput(format!(
                "fragment {name} spreads itself"
            )));
        }
        // An unknown fragment is left to async-graphql's validation.
        let Some((key, definition)) = self.fragments.get_key_value(name) else {
            return Ok(0);
        };
        self.visiting.push(key.as_str());
        let size = self.selection_set(&definition.node.selection_set.node)?;
        self.visiting.pop();
        self.sizes.insert(key.as_str(), size);
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` fragments, each spreading the previous one twice: 2ⁿ fields expanded.
    fn doubling(n: usize) -> String {
        let mut q = String::from("query { ...F0 }\nfragment Fbase on Query { me { role } }\n");
        q.push_str("fragment F");
        q.push_str(&n.to_string());
        q.push_str(" on Query { ...Fbase }\n");
        for i in (0..n).rev() {
            q.push_str(&format!(
                "fragment F{i} on Query {{ ...F{next} a{i}: me {{ ...R{next} }} }}\n",
                next = i + 1
            ));
        }
        for i in 1..=n {
            q.push_str(&format!("fragment R{i} on Me {{ role tenant }}\n"));
        }
        q
    }

    #[test]
    fn exponential_fragment_expansion_is_refused_quickly() {
        let mut q = String::from("query { ...F0 }\n");
        for i in 0..40 {
            q.push_str(&format!(
                "fragment F{i} on Query {{ ...F{next} ...F{next} }}\n",
                next = i + 1
            ));
        }
        q.push_str("fragment F40 on Query { me { role } }\n");
        assert!(q.len() < 2_000);
        // Counted with memoised fragment sizes (linear): 2⁴⁰ expansions would never return.
        let err = check_query(&q).unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
        assert!(err.message().contains("too complex"), "{}", err.message());
    }

    #[test]
    fn ordinary_queries_pass() {
        check_query("{ me { role tenant } }").unwrap();
        check_query(&doubling(5)).unwrap();
        check_query("not a query").unwrap();
    }

    #[test]
    fn cycles_and_oversized_documents_are_refused() {
        let cyclic = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
        assert_eq!(check_query(cyclic).unwrap_err().code(), "BAD_USER_INPUT");
        let huge = format!("{{ me {{ role }} }} #{}", "x".repeat(MAX_QUERY_BYTES));
        assert_eq!(check_query(&huge).unwrap_err().code(), "PAYLOAD_TOO_LARGE");
        let wide = format!(
            "{{ {} }}",
            (0..1_100)
                .map(|i| format!("a{i}: me {{ role }}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(wide.len() < MAX_QUERY_BYTES);
        assert_eq!(check_query(&wide).unwrap_err().code(), "BAD_USER_INPUT");
    }
}
