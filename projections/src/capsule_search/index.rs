//! The in-memory full-text index over the search documents (`tantivy`, RAM directory).
//!
//! It is a cache of the documents table and nothing more: [`SearchIndex::catch_up`] indexes the
//! rows whose `seq` is past the last one indexed (a listed row replaces the capsule's document,
//! an unlisted one removes it), and starts over when the table's highest `seq` is below it (the
//! table was rebuilt). Queries call it first, so a search sees every document the read model
//! holds when it starts.

use std::sync::{Arc, Mutex};

use sqlx::{AnyPool, Row};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, Value, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::Tables;
use crate::engine::{ProjectionError, LIVE_PREFIX};

/// Most query terms a search looks at (the rest are ignored).
pub const MAX_TERMS: usize = 16;
/// Rows read from the documents table per round of a catch-up.
const CATCH_UP_ROWS: i64 = 2_000;
/// The writer's memory budget (tantivy's minimum per indexing thread).
const WRITER_BYTES: usize = 15_000_000;

/// Fields and their weight in the score.
const NAME_BOOST: f32 = 3.0;
const TAGS_BOOST: f32 = 2.0;
const CATEGORY_BOOST: f32 = 1.5;
const DESCRIPTION_BOOST: f32 = 1.0;
/// An exact term counts this much more than a fuzzy or prefix match of it.
const EXACT_BOOST: f32 = 2.0;
const PREFIX_BOOST: f32 = 0.5;

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    name: Field,
    description: Field,
    tags: Field,
    category: Field,
}

struct Inner {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    f: Fields,
    pool: AnyPool,
    docs: String,
    /// The highest `seq` indexed; held across a catch-up so catch-ups take turns.
    indexed: tokio::sync::Mutex<i64>,
}

/// The index, shared by the requests of one process.
#[derive(Clone)]
pub struct SearchIndex {
    inner: Arc<Inner>,
}

/// One document row as read for indexing.
struct DocRow {
    name: String,
    description: String,
    tags: String,
    category: String,
    listed: bool,
}

fn index_error(e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Handler(format!("search index: {e}"))
}

/// The edit distance a term of `chars` characters is matched within: none for short words
/// (anything would match), one for most, two for long ones.
pub fn fuzziness(chars: usize) -> u8 {
    match chars {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

impl SearchIndex {
    /// An empty index over the live documents table; the first [`Self::catch_up`] fills it.
    pub fn new(pool: AnyPool) -> Result<Self, ProjectionError> {
        Self::over(pool, LIVE_PREFIX)
    }

    /// An empty index over the documents table with `prefix` (a rebuild's).
    pub fn over(pool: AnyPool, prefix: &str) -> Result<Self, ProjectionError> {
        let mut schema = Schema::builder();
        let f = Fields {
            key: schema.add_text_field("key", STRING | STORED),
            name: schema.add_text_field("name", TEXT),
            description: schema.add_text_field("description", TEXT),
            tags: schema.add_text_field("tags", TEXT),
            category: schema.add_text_field("category", TEXT),
        };
        let index = Index::create_in_ram(schema.build());
        let writer = index
            .writer_with_num_threads(1, WRITER_BYTES)
            .map_err(index_error)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                index,
                reader,
                writer: Mutex::new(writer),
                f,
                pool,
                docs: Tables::new(prefix).docs,
                indexed: tokio::sync::Mutex::new(0),
            }),
        })
    }

    /// Indexes every document row changed since the last catch-up.
    pub async fn catch_up(&self) -> Result<(), ProjectionError> {
        let mut indexed = self.inner.indexed.lock().await;
        let top: Option<i64> =
            sqlx::query_scalar(&format!("SELECT MAX(seq) FROM {}", self.inner.docs))
                .fetch_one(&self.inner.pool)
                .await?;
        let top = top.unwrap_or(0);
        if top == *indexed {
            return Ok(());
        }
        let mut restart = top < *indexed;
        if restart {
            tracing::info!(
                indexed = *indexed,
                top,
                "search documents were rebuilt: reindexing"
            );
            *indexed = 0;
        }
        loop {
            let rows = sqlx::query(&format!(
                "SELECT name, description, tags, category, listed, seq FROM {} \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
                self.inner.docs
            ))
            .bind(*indexed)
            .bind(CATCH_UP_ROWS)
            .fetch_all(&self.inner.pool)
            .await?;
            let Some(last) = rows.last() else { break };
            let last: i64 = last.try_get(5)?;
            let docs = rows
                .iter()
                .map(|r| {
                    Ok(DocRow {
                        name: r.try_get(0)?,
                        description: r.try_get(1)?,
                        tags: r.try_get(2)?,
                        category: r.try_get(3)?,
                        listed: r.try_get::<i64, _>(4)? != 0,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let inner = self.inner.clone();
            let full_round = docs.len() as i64 == CATCH_UP_ROWS;
            let first_of_restart = std::mem::take(&mut restart);
            tokio::task::spawn_blocking(move || inner.write(docs, first_of_restart))
                .await
                .map_err(index_error)??;
            *indexed = last;
            if !full_round {
                break;
            }
        }
        Ok(())
    }

    /// The names of the listed capsules matching `text`, best first, at most `limit`, with
    /// their scores. Every term of `text` may match a name, tag, category or description word
    /// exactly, by prefix, or within [`fuzziness`] edits; a capsule matching more terms, and
    /// matching them in its name or tags, scores higher.
    pub async fn candidates(
        &self,
        text: &str,
        limit: usize,
    ) -> Result<Vec<(String, f32)>, ProjectionError> {
        let inner = self.inner.clone();
        let text = text.to_owned();
        tokio::task::spawn_blocking(move || inner.search(&text, limit))
            .await
            .map_err(index_error)?
    }
}

impl Inner {
    fn write(&self, docs: Vec<DocRow>, restart: bool) -> Result<(), ProjectionError> {
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if restart {
            writer.delete_all_documents().map_err(index_error)?;
        }
        for d in docs {
            writer.delete_term(Term::from_field_text(self.f.key, &d.name));
            if d.listed {
                let mut document = doc!(
                    self.f.key => d.name.as_str(),
                    self.f.name => d.name.as_str(),
                    self.f.description => d.description,
                    self.f.category => d.category,
                );
                for tag in d.tags.split_whitespace() {
                    document.add_text(self.f.tags, tag);
                }
                writer.add_document(document).map_err(index_error)?;
            }
        }
        writer.commit().map_err(index_error)?;
        self.reader.reload().map_err(index_error)
    }

    fn terms(&self, text: &str) -> Result<Vec<String>, ProjectionError> {
        let mut analyzer = self
            .index
            .tokenizer_for_field(self.f.description)
            .map_err(index_error)?;
        let mut stream = analyzer.token_stream(text);
        let mut terms: Vec<String> = Vec::new();
        while stream.advance() && terms.len() < MAX_TERMS {
            let t = stream.token().text.clone();
            if !terms.contains(&t) {
                terms.push(t);
            }
        }
        Ok(terms)
    }

    fn query(&self, terms: &[String]) -> BooleanQuery {
        let fields = [
            (self.f.name, NAME_BOOST),
            (self.f.tags, TAGS_BOOST),
            (self.f.category, CATEGORY_BOOST),
            (self.f.description, DESCRIPTION_BOOST),
        ];
        let mut per_term: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in terms {
            let chars = t.chars().count();
            let mut any_field: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for (field, weight) in fields {
                let term = Term::from_field_text(field, t);
                let exact = TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
                any_field.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(exact), weight * EXACT_BOOST)),
                ));
                let distance = fuzziness(chars);
                if distance > 0 {
                    let fuzzy = FuzzyTermQuery::new(term.clone(), distance, true);
                    any_field.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(fuzzy), weight)),
                    ));
                }
                if chars >= 3 {
                    let prefix = FuzzyTermQuery::new_prefix(term, 0, true);
                    any_field.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(prefix), weight * PREFIX_BOOST)),
                    ));
                }
            }
            per_term.push((Occur::Should, Box::new(BooleanQuery::new(any_field))));
        }
        BooleanQuery::new(per_term)
    }

    fn search(&self, text: &str, limit: usize) -> Result<Vec<(String, f32)>, ProjectionError> {
        let terms = self.terms(text)?;
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&self.query(&terms), &TopDocs::with_limit(limit))
            .map_err(index_error)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let document: TantivyDocument = searcher.doc(address).map_err(index_error)?;
            if let Some(name) = document.get_first(self.f.key).and_then(|v| v.as_str()) {
                hits.push((name.to_owned(), score));
            }
        }
        Ok(hits)
    }
}
