//! The verification records of one backup as the listing reads them.

use super::records::{VerificationRecord, VerifyMode};
use super::{BackupId, Keys, Repository};

impl Repository {
    /// The newest verification record of a backup, and the newest of its own dump (read
    /// further back only while the newer ones are chain proofs).
    pub(super) async fn verifications(
        &self,
        keys: &Keys,
        db: &str,
        id: &BackupId,
    ) -> (Option<VerificationRecord>, Option<VerificationRecord>) {
        let Some(all) = keys.verifications.get(&(db.to_string(), id.clone())) else {
            return (None, None);
        };
        let mut newest = None;
        for key in all.iter().rev() {
            let Some(r) = self.load_record::<VerificationRecord>(key).await else {
                continue;
            };
            let dump = r.mode != VerifyMode::Chain;
            if newest.is_none() {
                newest = Some(r.clone());
            }
            if dump {
                return (newest, Some(r));
            }
        }
        (newest, None)
    }
}
