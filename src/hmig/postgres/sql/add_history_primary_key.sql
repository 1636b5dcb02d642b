ALTER TABLE {schema}.{table} ADD PRIMARY KEY (id)
