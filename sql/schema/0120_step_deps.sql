-- step_deps: the edges of a workflow version's DAG, step -> depends_on.

CREATE TABLE qflow.step_deps (
    workflow   text    NOT NULL,
    version    integer NOT NULL,
    step       text    NOT NULL,
    depends_on text    NOT NULL,
    PRIMARY KEY (workflow, version, step, depends_on),
    FOREIGN KEY (workflow, version, step) REFERENCES qflow.steps ON DELETE CASCADE,
    FOREIGN KEY (workflow, version, depends_on) REFERENCES qflow.steps ON DELETE CASCADE,
    CHECK (step <> depends_on)
);

CREATE INDEX step_deps_successors ON qflow.step_deps (workflow, version, depends_on);
