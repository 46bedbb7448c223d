#!/usr/bin/env bash
# Regenerates tests/fixtures/health from a live run: the e2e and lifecycle tests that reach each
# situation (building, serving, a canary step, a paused canary, a rollback, a failed build, a
# missed deadline, a name conflict, ...) write the ModelDeployment as they see it there.
# Needs the local cluster (make cluster-up) and the images (make images); about 15 minutes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
out=$repo/tests/fixtures/health
tests=(
  tests/integration/operator/test_lifecycle.py::test_create_builds_then_deploys_with_owned_children
  tests/integration/operator/test_lifecycle.py::test_failed_build_sets_failed_with_the_reason
  tests/integration/operator/test_lifecycle.py::test_a_foreign_object_with_a_childs_name_is_left_alone_with_name_conflict
  tests/integration/operator/test_e2e_serving.py::test_model_is_built_served_and_answers_through_its_service
  tests/integration/operator/test_e2e_revisions.py::test_switching_revisions_under_load_loses_no_request_and_going_back_needs_no_build
  tests/integration/operator/test_e2e_canary.py::test_steps_move_pods_and_promote_with_no_failed_request
  tests/integration/operator/test_e2e_canary.py::test_pause_holds_abort_rolls_back_and_retry_starts_again
  tests/integration/operator/test_e2e_status.py::test_a_revision_that_never_gets_ready_fails_by_its_deadline_while_stable_serves
  tests/integration/operator/test_e2e_status.py::test_a_new_model_that_can_never_start_is_stalled_and_not_ready
)
MODELSHIP_CAPTURE_HEALTH_FIXTURES=$out "${PY:-.venv/bin/python}" -m pytest -p no:cacheprovider -q "${tests[@]}"
echo "[health-fixtures] $(ls "$out" | wc -l) fixtures in $out"
