//! The deployment tests: one binary, a module per artefact. `image` and `kube_play` need podman and the image
//! `./scripts/test` builds; `containerfile` and `chart` need only files and the chart renderer's venv.

mod chart;
mod containerfile;
mod image;
mod kube_play;
